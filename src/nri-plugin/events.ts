// NRI events and the subscription bitmask (nri pkg/api/event.go): bit for event N = 1 << (N-1).

import { Event } from "../gen/nri.js";

export type NriEvent =
  | "RunPodSandbox"
  | "StopPodSandbox"
  | "RemovePodSandbox"
  | "CreateContainer"
  | "PostCreateContainer"
  | "StartContainer"
  | "PostStartContainer"
  | "UpdateContainer"
  | "PostUpdateContainer"
  | "StopContainer"
  | "RemoveContainer";

export const EVENT_NUMBER: Readonly<Record<NriEvent, number>> = {
  RunPodSandbox: Event.RUN_POD_SANDBOX,
  StopPodSandbox: Event.STOP_POD_SANDBOX,
  RemovePodSandbox: Event.REMOVE_POD_SANDBOX,
  CreateContainer: Event.CREATE_CONTAINER,
  PostCreateContainer: Event.POST_CREATE_CONTAINER,
  StartContainer: Event.START_CONTAINER,
  PostStartContainer: Event.POST_START_CONTAINER,
  UpdateContainer: Event.UPDATE_CONTAINER,
  PostUpdateContainer: Event.POST_UPDATE_CONTAINER,
  StopContainer: Event.STOP_CONTAINER,
  RemoveContainer: Event.REMOVE_CONTAINER,
};

const BY_NUMBER: readonly (NriEvent | undefined)[] = (() => {
  const out: (NriEvent | undefined)[] = [];
  for (const [name, n] of Object.entries(EVENT_NUMBER)) out[n] = name as NriEvent;
  return out;
})();

/** All valid event bits (0x7FF); containerd drops a plugin that sets any other bit. */
export const VALID_EVENT_MASK = 0x7ff;

export function eventFromNumber(n: number): NriEvent | undefined {
  return BY_NUMBER[n];
}

export function eventMask(events: readonly NriEvent[]): number {
  let mask = 0;
  for (const e of events) {
    const n = EVENT_NUMBER[e];
    if (n === undefined) throw new TypeError(`nri: unknown event ${JSON.stringify(e)}`);
    mask |= 1 << (n - 1);
  }
  return mask;
}
