import { RemoteError } from '../cli/errors.ts';

/**
 * An upload or download that broke off part way (a dropped or stalled
 * connection) and resumes where it stopped: runTransfer tries it again
 * within the command, and the same command run later resumes too.
 */
export class BrokenTransferError extends RemoteError {}
