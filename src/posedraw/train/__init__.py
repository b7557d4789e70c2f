"""LightningModules (one per stage) and the Trainer wiring they share."""
