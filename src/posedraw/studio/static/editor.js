// The pose editor: the skeleton in posedraw's render colours as SVG over the canvas (and an optional
// background photo). Drag a joint with mouse or touch (pointer events); shift-click adds joints to the
// selection, double-click selects a whole person; a drag moves every selected joint.

import { History, PoseModel } from "./pose.js";

const SVG = "http://www.w3.org/2000/svg";

export class Editor {
  constructor(svg, skeleton, { onLive, onCommit, onRender = () => {} }) {
    this.svg = svg;
    this.skeleton = skeleton;
    this.onLive = onLive; // the pose changes during a drag
    this.onCommit = onCommit; // an edit is finished (release, button, import)
    this.onRender = onRender; // the pose or the selection was drawn anew
    this.history = new History();
    this.selection = [];
    this.pose = null;
    this.background = null;
    svg.addEventListener("pointermove", (e) => this.drag(e));
    svg.addEventListener("pointerup", (e) => this.release(e));
    svg.addEventListener("pointercancel", (e) => this.release(e));
    svg.addEventListener("pointerdown", (e) => {
      if (e.target === svg || e.target.dataset.role === "background") this.select([]);
    });
  }

  load(doc, { record = true } = {}) {
    if (record && this.pose) this.history.push(this.pose.clone());
    this.pose = PoseModel.fromDoc(doc, this.skeleton.joints);
    this.selection = [];
    this.render();
    this.onCommit();
  }

  doc() {
    return this.pose.toDoc(this.skeleton.joints);
  }

  edit(change) {
    this.history.push(this.pose.clone());
    change(this.pose);
    this.render();
    this.onCommit();
  }

  undo() {
    const previous = this.history.undo(this.pose.clone());
    if (previous) { this.pose = previous; this.selection = []; this.render(); this.onCommit(); }
  }

  redo() {
    const next = this.history.redo(this.pose.clone());
    if (next) { this.pose = next; this.selection = []; this.render(); this.onCommit(); }
  }

  setBackground(url, width, height) {
    this.background = url ? { url, width, height } : null;
    this.render();
  }

  select(selection) {
    this.selection = selection;
    this.render();
  }

  // The one person the selection belongs to (every selected joint is theirs), or null.
  selectedPerson() {
    const people = new Set(this.selection.map((s) => s[0]));
    return people.size === 1 ? [...people][0] : null;
  }

  selected() {
    return this.selection.length ? this.selection : this.pose.people.flatMap((p, i) => p.joints.map((_, k) => [i, k]));
  }

  point(event) {
    const m = this.svg.getScreenCTM().inverse();
    const p = new DOMPoint(event.clientX, event.clientY).matrixTransform(m);
    return [p.x, p.y];
  }

  grab(event, p, k) {
    event.preventDefault();
    event.stopPropagation();
    const key = (s) => s[0] === p && s[1] === k;
    if (event.shiftKey) {
      this.selection = this.selection.some(key) ? this.selection.filter((s) => !key(s)) : [...this.selection, [p, k]];
    } else if (!this.selection.some(key)) {
      this.selection = [[p, k]];
    }
    this.dragging = { start: this.point(event), before: this.pose.clone(), moved: false,
      from: this.selection.map((s) => [this.pose.joint(s).x, this.pose.joint(s).y]) };
    this.svg.setPointerCapture(event.pointerId);
    this.render();
  }

  drag(event) {
    if (!this.dragging) return;
    const [x, y] = this.point(event);
    const [dx, dy] = [x - this.dragging.start[0], y - this.dragging.start[1]];
    this.selection.forEach((s, i) => {
      const j = this.pose.joint(s);
      j.x = this.dragging.from[i][0] + dx;
      j.y = this.dragging.from[i][1] + dy;
    });
    this.dragging.moved = true;
    this.render();
    this.onLive();
  }

  release() {
    if (!this.dragging) return;
    const { before, moved } = this.dragging;
    this.dragging = null;
    if (moved) {
      this.history.push(before);
      this.onCommit();
    }
  }

  render() {
    const { width, height } = this.pose;
    const svg = this.svg;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.replaceChildren();
    const add = (tag, attrs, parent = svg) => {
      const el = document.createElementNS(SVG, tag);
      for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
      parent.appendChild(el);
      return el;
    };
    add("rect", { x: 0, y: 0, width, height, fill: "#111", "data-role": "background" });
    if (this.background) {
      add("image", { href: this.background.url, x: 0, y: 0, width, height, opacity: 0.75, "data-role": "background",
        preserveAspectRatio: "none" });
    }
    const thick = Math.max(2, 0.012 * Math.max(width, height));
    const rgb = (c, state) => `rgb(${c.map((v) => (state === "visible" ? v : v / 2)).join(",")})`;
    this.pose.people.forEach((person, p) => {
      const g = add("g", { "data-person": p });
      this.skeleton.limbs.forEach(([a, b], i) => {
        const ja = person.joints[a], jb = person.joints[b];
        if (ja.state === "absent" || jb.state === "absent") return;
        const state = ja.state === "visible" && jb.state === "visible" ? "visible" : "occluded";
        add("line", { x1: ja.x, y1: ja.y, x2: jb.x, y2: jb.y, stroke: rgb(this.skeleton.limb_colours[i], state),
          "stroke-width": thick, "stroke-linecap": "round" }, g);
      });
      person.joints.forEach((j, k) => {
        const chosen = this.selection.some((s) => s[0] === p && s[1] === k);
        const circle = add("circle", {
          cx: j.x, cy: j.y, r: thick * 1.6, class: `joint ${j.state}${chosen ? " selected" : ""}`,
          fill: j.state === "absent" ? "none" : rgb(this.skeleton.joint_colours[k], j.state),
          stroke: chosen ? "#fff" : j.state === "absent" ? "#888" : "none", "stroke-width": thick / 2,
          "data-person": p, "data-joint": this.skeleton.joints[k],
        }, g);
        add("title", {}, circle).textContent = `${this.skeleton.joints[k]} (${j.state})`;
        circle.addEventListener("pointerdown", (e) => this.grab(e, p, k));
        circle.addEventListener("dblclick", () => this.select(person.joints.map((_, i) => [p, i])));
      });
    });
    this.onRender();
  }
}
