// Remote input from the technician's mouse and keyboard (docs/api.md, "Data channels").
//
// Input is captured only after a click into the video, so that typing in the chat or the
// note never reaches the user's computer. While captured, every key goes to the host —
// Escape too, which a dialog there may need — so the way out is a combination a host
// program hardly ever needs: Ctrl+Alt+Shift pressed together (or the "Release input" button).

/**
 * Where the picture actually is inside a <video> with object-fit: contain (letterbox bars excluded).
 * @param {HTMLVideoElement} video
 * @returns {{left: number, top: number, width: number, height: number}|null} in client pixels
 */
export function pictureRect(video) {
  const box = video.getBoundingClientRect();
  if (!video.videoWidth || !video.videoHeight || !box.width || !box.height) return null;
  const scale = Math.min(box.width / video.videoWidth, box.height / video.videoHeight);
  const width = video.videoWidth * scale, height = video.videoHeight * scale;
  return { left: box.left + (box.width - width) / 2, top: box.top + (box.height - height) / 2, width, height };
}

/**
 * A client point as normalised coordinates of the picture (0 = first pixel, 1 = last).
 * @returns {{x: number, y: number, inside: boolean}|null}
 */
export function normalise(video, clientX, clientY) {
  const rect = pictureRect(video);
  if (!rect) return null;
  const x = (clientX - rect.left) / rect.width, y = (clientY - rect.top) / rect.height;
  const inside = x >= 0 && x <= 1 && y >= 0 && y <= 1;
  const clamp = (v) => Math.min(1, Math.max(0, v));
  return { x: clamp(x), y: clamp(y), inside };
}

const BUTTONS = { 0: "left", 1: "middle", 2: "right" };
const RELEASE_HINT = "Ctrl+Alt+Shift";
/** Pixels of wheel movement that make one notch (DOM_DELTA_PIXEL, as Chromium reports). */
const PIXELS_PER_NOTCH = 100;

export class InputCapture {
  /**
   * @param {HTMLVideoElement} video
   * @param {{send: (label: string, message: object) => boolean, allowed: () => boolean,
   *          onChange: (captured: boolean) => void, onBlocked: (why: string) => void}} options
   *   send: to a data channel; allowed: whether grant ∩ consent holds control now
   */
  constructor(video, options) {
    this.video = video;
    this.options = options;
    this.captured = false;
    this.seq = 1;
    this.held = new Set(); // codes down on the host: released when capture ends, so none stays stuck
    this.buttonsDown = new Set();
    this.wheelRest = 0;
    this.lastMove = 0;
    this._listeners = [];
    this._on(video, "mousedown", (e) => this._mouse(e, true));
    this._on(video, "mouseup", (e) => this._mouse(e, false));
    this._on(video, "mousemove", (e) => this._move(e));
    this._on(video, "wheel", (e) => this._wheel(e), { passive: false });
    this._on(video, "contextmenu", (e) => { if (this.captured) e.preventDefault(); });
    // Capture phase on window: nothing on the page (a focused button) sees keys meant for the host.
    this._on(window, "keydown", (e) => this._key(e, true), true);
    this._on(window, "keyup", (e) => this._key(e, false), true);
    this._on(window, "blur", () => this.release());
  }

  static get releaseHint() { return RELEASE_HINT; }

  _on(target, type, fn, options) {
    target.addEventListener(type, fn, options);
    this._listeners.push([target, type, fn, options]);
  }

  /** Start sending input (the user clicked into the video). */
  capture() {
    if (this.captured) return;
    if (!this.options.allowed()) { this.options.onBlocked("control is not allowed: the grant or the user's consent lacks it"); return; }
    this.captured = true;
    this.video.focus({ preventScroll: true });
    this.options.onChange(true);
  }

  /** Stop sending input; keys and buttons still down on the host are let go first. */
  release() {
    if (!this.captured) return;
    for (const code of this.held) this._send({ type: "key", code, key: "", down: false });
    for (const button of this.buttonsDown) this._send({ type: "pointer_button", button, down: false, x: this.lastX || 0, y: this.lastY || 0 });
    this.held.clear();
    this.buttonsDown.clear();
    this.captured = false;
    this.options.onChange(false);
  }

  /** Type text on the host as it is (the protocol's `text`, at most 1000 characters a message). */
  typeText(text) {
    if (!this.options.allowed()) { this.options.onBlocked("control is not allowed: the grant or the user's consent lacks it"); return false; }
    for (let start = 0; start < text.length; start += 1000) this._send({ type: "text", text: text.slice(start, start + 1000) });
    return true;
  }

  _send(message, label = "input") {
    // Checked at every message: consent can be withdrawn in the middle of a drag.
    if (!this.options.allowed()) { this.release(); this.options.onBlocked("control was withdrawn"); return false; }
    return this.options.send(label, { ...message, seq: this.seq++ });
  }

  _mouse(event, down) {
    if (!this.captured) {
      // The first click only captures: it must not click anything on the user's screen.
      if (down && event.button === 0) { event.preventDefault(); this.capture(); }
      return;
    }
    const at = normalise(this.video, event.clientX, event.clientY);
    const button = BUTTONS[event.button];
    if (!at || !button || (down && !at.inside)) return;
    event.preventDefault();
    if (down) this.buttonsDown.add(button); else this.buttonsDown.delete(button);
    this.lastX = at.x; this.lastY = at.y;
    this._send({ type: "pointer_button", button, down, x: at.x, y: at.y });
  }

  _move(event) {
    if (!this.captured) return;
    const at = normalise(this.video, event.clientX, event.clientY);
    if (!at || !at.inside) return;
    this.lastX = at.x; this.lastY = at.y;
    // Moves go on the unordered channel (a lost one is replaced by the next), at most ~60 a second.
    const now = performance.now();
    if (now - this.lastMove < 16) return;
    this.lastMove = now;
    this._send({ type: "pointer_move", x: at.x, y: at.y }, "pointer");
  }

  _wheel(event) {
    if (!this.captured) return;
    event.preventDefault();
    const at = normalise(this.video, event.clientX, event.clientY);
    if (!at || !at.inside) return;
    const perNotch = event.deltaMode === 1 ? 3 : event.deltaMode === 2 ? 1 : PIXELS_PER_NOTCH;
    // Whole notches only; what is left over adds up with the next movement (touchpads).
    this.wheelRest += event.deltaY / perNotch;
    const dy = Math.max(-50, Math.min(50, Math.trunc(this.wheelRest)));
    const dx = Math.max(-50, Math.min(50, Math.trunc(event.deltaX / perNotch)));
    if (!dy && !dx) return;
    this.wheelRest -= dy;
    this._send({ type: "wheel", dx, dy, x: at.x, y: at.y });
  }

  _key(event, down) {
    if (!this.captured) {
      // Keyboard users: Enter on the focused screen captures, as a click does.
      if (down && event.target === this.video && event.key === "Enter") { event.preventDefault(); this.capture(); }
      return;
    }
    event.preventDefault();
    event.stopPropagation();
    if (down && event.ctrlKey && event.altKey && event.shiftKey && ["Control", "Alt", "Shift"].includes(event.key)) {
      this.release(); // the release combination itself is not a keystroke for the host
      return;
    }
    if (!/^[A-Za-z0-9]{1,32}$/.test(event.code)) return; // keys without a W3C code (some IMEs)
    if (down) this.held.add(event.code); else this.held.delete(event.code);
    this._send({ type: "key", code: event.code, key: event.key.length <= 32 ? event.key : "", down });
  }

  detach() {
    this.release();
    for (const [target, type, fn, options] of this._listeners) target.removeEventListener(type, fn, options);
  }
}
