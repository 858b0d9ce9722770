/**
 * What a review says about a promotion: its title and description, for the
 * merge request or pull request the server opens from push options. One
 * line each (git does not carry line breaks in push options).
 */
export interface ReviewText {
  title: string;
  description: string;
}

export interface Promotion {
  name: string;
  version: string;
  from: string;
  to: string;
}

export function reviewText(p: Promotion): ReviewText {
  return {
    title: `airlock: promote ${p.name} ${p.version} to ${p.to}`,
    description: `Promotes ${p.name} ${p.version} from ${p.from} to ${p.to}: the release airlock loaded on ${p.from}. Merging it updates ${p.to}; its overlay is kept.`,
  };
}
