import type { Readable } from 'node:stream';
import type { Descriptor } from '../oci/descriptor.ts';

/**
 * The content store seam (after oras-go's content.Storage): everything that holds
 * OCI content — a registry repository, an OCI layout, a bundle — is a source, a
 * sink, or both, and copyGraph moves content between them.
 */
export interface ContentSource {
  /** True when the store holds content with this digest. */
  exists(desc: Descriptor): Promise<boolean>;
  /**
   * The content's bytes as a stream. The stream is checked against desc.size and
   * desc.digest while it flows and errors (VerificationError) on a mismatch
   * before its last byte is released.
   */
  fetch(desc: Descriptor): Promise<Readable>;
}

export interface ReferenceResolver {
  /** The descriptor a tag or digest reference currently points to. */
  resolve(reference: string): Promise<Descriptor>;
}

export interface ContentSink {
  exists(desc: Descriptor): Promise<boolean>;
  /**
   * Store the content. The sink commits it only after every byte matched
   * desc.size and desc.digest; on a mismatch nothing is committed and the
   * promise rejects with a VerificationError.
   */
  push(desc: Descriptor, body: Readable): Promise<void>;
  /** Point a reference (tag, or full reference for a layout) at a manifest or index. */
  tag(desc: Descriptor, reference: string): Promise<void>;
  /**
   * Make the blob present without sending its bytes, when the store can
   * (a cross-repository mount inside one registry). False when it could not.
   */
  mount?(desc: Descriptor): Promise<boolean>;
  /** A short human name for messages: "registry.example.com/harness/ng-manager". */
  readonly name: string;
}

export type ContentStore = ContentSource & ContentSink;
