/**
 * A callback run once after a delay, cancellable, that never keeps the
 * process alive: a progress redraw or a retry summary is an extra, the work
 * itself decides when a command ends. Tests pass their own Schedule and run
 * the callbacks by hand.
 */

/** Cancels a scheduled callback (nothing happens if it already ran). */
export type Cancel = () => void;

/** Runs `fn` once after `ms` milliseconds. */
export type Schedule = (fn: () => void, ms: number) => Cancel;

/** The default Schedule: an unref'd setTimeout. */
export const backgroundTimeout: Schedule = (fn, ms) => {
  const timer = setTimeout(fn, ms);
  timer.unref();
  return () => clearTimeout(timer);
};
