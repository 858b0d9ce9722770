/**
 * Child process for the bounded-memory test: copies one image
 * registry -> OCI layout -> registry with the product's code, under whatever
 * heap limit the parent gives node, and prints its peak RSS as JSON.
 *
 *   node --max-old-space-size=64 --import tsx copy-image.ts SRC_HOST DST_HOST REPO TAG LAYOUT_DIR
 */
import { copyGraph } from '../../../shared/copy.ts';
import { RegistryClient } from '../../../shared/registry/client.ts';
import { HttpTransport } from '../../../shared/registry/transport.ts';
import { LayoutStore } from '../../../shared/store/layout.ts';
import { RemoteStore } from '../../../shared/store/remote.ts';

const [srcHost, dstHost, repository, tag, layoutDir] = process.argv.slice(2) as [string, string, string, string, string];
let peak = 0;
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);

const transport = new HttpTransport();
const src = new RemoteStore(new RegistryClient(srcHost, transport, { plainHttp: true }), repository);
const dst = new RemoteStore(new RegistryClient(dstHost, transport, { plainHttp: true }), repository);
const layout = await LayoutStore.open(layoutDir);

const root = await src.resolve(tag);
await copyGraph(src, layout, root);
await layout.tag(root, tag);
await copyGraph(layout, dst, await layout.resolve(tag));
await dst.tag(root, tag);
await transport.close();
clearInterval(sampler);
peak = Math.max(peak, process.memoryUsage.rss());
console.log(JSON.stringify({ digest: root.digest, peakRss: peak, heapUsed: process.memoryUsage().heapUsed }));
