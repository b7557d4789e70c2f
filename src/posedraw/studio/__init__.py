"""posedraw studio: a local web app to pose a character and watch it being drawn (`posedraw studio`)."""
