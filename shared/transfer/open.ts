import { openBundleBytes, type BundleBytes } from '../bundle/volumes.ts';
import { openS3Bytes, type S3Options } from './s3.ts';

/** A bundle wherever it is: a local file, the first volume of a split one, or an s3:// object (read by range, no local copy). */
export function openAnyBundle(location: string, options: { s3?: S3Options; checkVolumes?: boolean } = {}): Promise<BundleBytes> {
  if (location.startsWith('s3://')) return openS3Bytes(location, options.s3 ?? {});
  return openBundleBytes(location, { checkVolumes: options.checkVolumes });
}
