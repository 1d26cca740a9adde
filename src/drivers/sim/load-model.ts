import { hash01 } from "../../util/rng.js";

/**
 * CPU demand of a simulated VM. Demand at time t is a pure function of (seed, VM index, t): nothing is
 * stepped, so a sample can be taken at any time, in any order, and two clusters with the same seed agree.
 */
export interface LoadProfile {
  /** Global VM index: the key of every hash draw for this VM. */
  readonly index: number;
  readonly vcpus: number;
  /** Mean demand in host CPUs. */
  readonly baseline: number;
  /** Daily wave amplitude in host CPUs. */
  readonly amplitude: number;
  /** Wave phase, radians. */
  readonly phase: number;
  /** Extra CPUs while a burst is on. */
  readonly burstCpus: number;
  /** Started on a hot host: high, steady demand wherever it runs. */
  readonly hot: boolean;
}

/** Bursts are decided per VM per slot of this length. */
export const BURST_SLOT_MS = 5 * 60_000;
/** Chance that a VM bursts in a slot. */
export const BURST_PROBABILITY = 0.03;
/** Share of its vCPUs a hot VM keeps busy at most. */
export const HOT_UTILISATION_MAX = 0.98;
/** Target load of a hot host (sum of its hot VMs' demand over its CPUs). */
export const HOT_HOST_TARGET = 0.97;

/** Salts for hash01 so different draws about one VM are independent. */
export const SALT = {
  baseline: 0xba5e,
  amplitude: 0xa371,
  phase: 0x9a5e,
  burst: 0xb0257,
  burstSize: 0xb5e,
  dirtyHeavy: 0xd1,
  dirtyRate: 0xd2,
  failure: 0xfa11,
  failurePoint: 0xfa12,
  cellPhase: 0xce11,
  tenant: 0x7e4a,
} as const;

export interface ProfileInput {
  readonly seed: number;
  readonly index: number;
  readonly vcpus: number;
  readonly meanUtilisation: number;
  /** Phase shared by the VMs of a cell (radians), so host loads visibly wave. */
  readonly cellPhase: number;
  /** Set for VMs of a hot host: the share of vCPUs kept busy. */
  readonly hotUtilisation?: number;
}

export function buildLoadProfile(p: ProfileInput): LoadProfile {
  const { seed, index, vcpus } = p;
  if (p.hotUtilisation !== undefined) {
    const baseline = vcpus * Math.min(HOT_UTILISATION_MAX, p.hotUtilisation);
    return { index, vcpus, baseline, amplitude: baseline * 0.01, phase: p.cellPhase, burstCpus: 0, hot: true };
  }
  // Factor 0.6–1.4 (mean 1): some VMs idle, some busy.
  const baseline = vcpus * p.meanUtilisation * (0.6 + 0.8 * hash01(seed, SALT.baseline, index));
  return {
    index,
    vcpus,
    baseline,
    amplitude: baseline * (0.2 + 0.3 * hash01(seed, SALT.amplitude, index)),
    phase: p.cellPhase + (hash01(seed, SALT.phase, index) - 0.5) * (Math.PI / 2),
    burstCpus: vcpus * (0.3 + 0.5 * hash01(seed, SALT.burstSize, index)),
    hot: false,
  };
}

/** Whether the VM bursts during the burst slot containing tMs. */
export function burstingAt(seed: number, p: LoadProfile, tMs: number): boolean {
  return !p.hot && hash01(seed, SALT.burst, p.index, Math.floor(tMs / BURST_SLOT_MS)) < BURST_PROBABILITY;
}

/**
 * CPU demand in host CPUs at time tMs (epoch ms), clamped to [0, vcpus]. `bursting` may be passed when the
 * caller caches burstingAt() per slot (it is the same for every t of a slot).
 */
export function demandAt(
  seed: number,
  p: LoadProfile,
  tMs: number,
  wavePeriodMs: number,
  bursting: boolean = burstingAt(seed, p, tMs),
): number {
  let d = p.baseline + p.amplitude * Math.sin((2 * Math.PI * tMs) / wavePeriodMs + p.phase);
  if (bursting) d += p.burstCpus;
  return d < 0 ? 0 : d > p.vcpus ? p.vcpus : d;
}
