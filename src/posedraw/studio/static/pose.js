// The pose being edited: people of 17 joints {x, y, state} on a canvas, read from and written to posedraw
// JSON. Absent joints keep their last position (or their person's centre) so they can be placed again.
// Parts (hands, face, feet) are carried through unedited; each person's prompt ("" for none) is kept with
// that person and written as its "prompt" when it says something.

export const STATES = ["visible", "occluded", "absent"];

export class PoseModel {
  constructor(width, height, people) {
    this.width = width;
    this.height = height;
    this.people = people; // [{joints: [{x, y, state}], parts, prompt}]
  }

  static fromDoc(doc, jointNames) {
    const people = doc.people.map((person) => {
      const joints = jointNames.map((name) => {
        const j = person.joints[name] || { state: "absent" };
        return { x: j.x ?? null, y: j.y ?? null, state: j.state || "visible" };
      });
      const placed = joints.filter((j) => j.x !== null);
      const cx = placed.length ? placed.reduce((s, j) => s + j.x, 0) / placed.length : doc.canvas.width / 2;
      const cy = placed.length ? placed.reduce((s, j) => s + j.y, 0) / placed.length : doc.canvas.height / 2;
      for (const j of joints) if (j.x === null) Object.assign(j, { x: cx, y: cy });
      return { joints, parts: person.parts, prompt: person.prompt || "" };
    });
    const scale = doc.coordinates === "normalized" ? [doc.canvas.width, doc.canvas.height] : [1, 1];
    for (const p of people) for (const j of p.joints) { j.x *= scale[0]; j.y *= scale[1]; }
    return new PoseModel(doc.canvas.width, doc.canvas.height, people);
  }

  toDoc(jointNames) {
    const round = (v) => Math.round(v * 100) / 100;
    return {
      schema: "posedraw.pose/1",
      canvas: { width: this.width, height: this.height },
      coordinates: "pixels",
      people: this.people.map((p) => {
        const joints = {};
        p.joints.forEach((j, k) => {
          joints[jointNames[k]] = j.state === "absent" ? { state: "absent" } : { x: round(j.x), y: round(j.y), state: j.state };
        });
        const person = p.parts ? { joints, parts: p.parts } : { joints };
        if (p.prompt && p.prompt.trim()) person.prompt = p.prompt;
        return person;
      }),
    };
  }

  clone() {
    return new PoseModel(this.width, this.height, structuredClone(this.people));
  }

  joint([p, k]) {
    return this.people[p].joints[k];
  }

  centre(selection) {
    const pts = selection.map((s) => this.joint(s));
    return [pts.reduce((a, j) => a + j.x, 0) / pts.length, pts.reduce((a, j) => a + j.y, 0) / pts.length];
  }

  // Moves, rotations and scalings of the selected joints, about their centre.
  transform(selection, fn) {
    const [cx, cy] = this.centre(selection);
    for (const s of selection) {
      const j = this.joint(s);
      [j.x, j.y] = fn(j.x - cx, j.y - cy).map((v, i) => v + (i ? cy : cx));
    }
  }

  rotate(selection, degrees) {
    const a = (degrees * Math.PI) / 180, c = Math.cos(a), s = Math.sin(a);
    this.transform(selection, (x, y) => [c * x - s * y, s * x + c * y]);
  }

  scale(selection, factor) {
    this.transform(selection, (x, y) => [x * factor, y * factor]);
  }

  setState(selection, state) {
    for (const s of selection) this.joint(s).state = state;
  }

  // A horizontal mirror: x -> width - x, and every left joint becomes the right one (posedraw's flip).
  mirror(permutation) {
    for (const p of this.people) {
      const flipped = permutation.map((from) => ({ ...p.joints[from], x: this.width - p.joints[from].x }));
      p.joints = flipped;
      p.parts = undefined; // parts would need their own mirroring; they are dropped rather than left wrong
    }
  }

  addPerson() {
    const source = this.people[this.people.length - 1];
    const shift = this.width * 0.25;
    const joints = source.joints.map((j) => ({ ...j, x: Math.min(this.width - 1, j.x + shift) }));
    this.people.push({ joints, prompt: "" });
  }

  setPrompt(p, text) {
    this.people[p].prompt = text;
  }

  removePerson(p) {
    if (this.people.length > 1) this.people.splice(p, 1);
  }
}

// Undo / redo of whole pose snapshots.
export class History {
  constructor(limit = 200) {
    this.done = [];
    this.undone = [];
    this.limit = limit;
  }

  push(snapshot) {
    this.done.push(snapshot);
    if (this.done.length > this.limit) this.done.shift();
    this.undone = [];
  }

  undo(current) {
    if (!this.done.length) return null;
    this.undone.push(current);
    return this.done.pop();
  }

  redo(current) {
    if (!this.undone.length) return null;
    this.done.push(current);
    return this.undone.pop();
  }
}
