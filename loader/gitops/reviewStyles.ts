import { pushOptionText, type ReviewText } from './reviewText.ts';

/**
 * How `promote --review` hands a promotion to the server for review:
 * - branch: push airlock/promote-ENV-VERSION; someone opens the merge request;
 * - gitlab: push that branch with GitLab's merge_request.* push options, and
 *   GitLab opens the merge request;
 * - agit: push HEAD:refs/for/ENV with topic/title/description (Gitea,
 *   Forgejo, Gerrit), and the server opens a pull request or change.
 * Push options hold no line breaks: GitLab gets them as the two characters
 * "\n" (it turns them back into line breaks), agit servers one line.
 */
export const REVIEW_STYLES = ['branch', 'gitlab', 'agit'] as const;
export type ReviewStyle = (typeof REVIEW_STYLES)[number];

export interface ReviewPush {
  /** Full ref on the server. */
  ref: string;
  /** Push options; none for the branch style (a plain push). */
  options: string[];
}

export function reviewBranch(env: string, version: string): string {
  return `airlock/promote-${env}-${version}`;
}

export function reviewPush(style: ReviewStyle, env: string, version: string, text: ReviewText): ReviewPush {
  switch (style) {
    case 'branch':
      return { ref: `refs/heads/${reviewBranch(env, version)}`, options: [] };
    case 'gitlab':
      return {
        ref: `refs/heads/${reviewBranch(env, version)}`,
        options: [
          'merge_request.create',
          `merge_request.target=${env}`,
          `merge_request.title=${text.title}`,
          `merge_request.description=${pushOptionText(text.description, 'literal')}`,
          'merge_request.remove_source_branch',
        ],
      };
    case 'agit':
      return {
        ref: `refs/for/${env}`,
        options: [`topic=airlock-promote-${env}-${version}`, `title=${text.title}`, `description=${pushOptionText(text.description, 'one-line')}`],
      };
  }
}
