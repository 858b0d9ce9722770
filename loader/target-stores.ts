import type { RegistryClient } from '../shared/registry/client.ts';
import { RemoteStore } from '../shared/store/remote.ts';
import type { Target } from './targets.ts';

/** One RemoteStore per target repository of a load, and how a target is named in messages. */
export class TargetStores {
  private readonly stores = new Map<string, { remote: RemoteStore }>();
  constructor(readonly client: RegistryClient) {}

  for(repository: string): { remote: RemoteStore } {
    let s = this.stores.get(repository);
    if (!s) this.stores.set(repository, (s = { remote: new RemoteStore(this.client, repository) }));
    return s;
  }

  display(t: Target): string {
    return this.client.display(t.repository) + (t.tag ? `:${t.tag}` : `@${t.root.digest}`);
  }
}
