// AudioWorklet: the microphone as 16 kHz mono frames of float32 samples, posted to the page.
// When the AudioContext already runs at 16 kHz (Chromium resamples the microphone itself), the
// samples pass through; otherwise a windowed-sinc low-pass (63 taps, Blackman, cut-off 0.45 x
// the target rate) and linear interpolation resample them here.
"use strict";

class Resampler {
  constructor(inRate, outRate) {
    this.pass = inRate === outRate;
    this.step = inRate / outRate;
    const n = 63, fc = 0.45 * outRate / inRate;
    this.taps = new Float32Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const m = i - (n - 1) / 2;
      const sinc = m === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * m) / (Math.PI * m);
      const w = 0.42 - 0.5 * Math.cos(2 * Math.PI * i / (n - 1)) + 0.08 * Math.cos(4 * Math.PI * i / (n - 1));
      this.taps[i] = sinc * w;
      sum += this.taps[i];
    }
    for (let i = 0; i < n; i++) this.taps[i] /= sum;
    this.hist = new Float32Array(2 * n);  // the last n inputs, twice, so a window is contiguous
    this.n = n;
    this.hi = 0;
    this.prev = 0;  // the previous filtered sample
    this.t = 0;     // where the next output lies between prev (0) and the next filtered sample (1)
  }

  push(input, emit) {
    if (this.pass) { for (let i = 0; i < input.length; i++) emit(input[i]); return; }
    const n = this.n, h = this.hist, taps = this.taps;
    for (let i = 0; i < input.length; i++) {
      h[this.hi] = input[i];
      h[this.hi + n] = input[i];
      this.hi = (this.hi + 1) % n;
      let y = 0;
      for (let k = 0; k < n; k++) y += taps[k] * h[this.hi + k];
      while (this.t <= 1) { emit(this.prev + (y - this.prev) * this.t); this.t += this.step; }
      this.t -= 1;
      this.prev = y;
    }
  }
}

class SeqkitFrames extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions || {};
    this.target = o.targetRate || 16000;
    this.size = o.frameSamples || 640;
    this.resampler = new Resampler(sampleRate, this.target);
    this.frame = new Float32Array(this.size);
    this.fill = 0;
    this.running = true;
    this.port.onmessage = (e) => { if (e.data === "stop") this.running = false; };
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return this.running;
    const len = input[0].length;
    const mono = new Float32Array(len);
    for (const ch of input) for (let i = 0; i < len; i++) mono[i] += ch[i] / input.length;
    this.resampler.push(mono, (v) => {
      this.frame[this.fill++] = v;
      if (this.fill === this.size) {
        this.port.postMessage(this.frame, [this.frame.buffer]);
        this.frame = new Float32Array(this.size);
        this.fill = 0;
      }
    });
    return this.running;
  }
}

registerProcessor("seqkit-frames", SeqkitFrames);
