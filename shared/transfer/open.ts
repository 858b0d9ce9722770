import { openBundleBytes, type BundleBytes } from '../bundle/volumes.ts';
import type { S3Options } from './s3.ts';

/**
 * A bundle wherever it is: a local file, the first volume of a split one, or an s3:// object (read by range, no local copy).
 * The S3 client (the AWS SDK) is imported only for an s3:// bundle: verify of a local file loads none of it.
 */
export async function openAnyBundle(location: string, options: { s3?: S3Options; checkVolumes?: boolean } = {}): Promise<BundleBytes> {
  if (location.startsWith('s3://')) {
    const { openS3Bytes } = await import('./s3.ts');
    return openS3Bytes(location, options.s3 ?? {});
  }
  return openBundleBytes(location, { checkVolumes: options.checkVolumes });
}
