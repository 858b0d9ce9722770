/**
 * git's pkt-line framing (gitprotocol-common): each line is its length in
 * four hex digits (the four included) and its bytes; "0000" is a flush.
 */
export const FLUSH = Buffer.from('0000');

/** The largest payload one pkt-line carries (65520 bytes in all). */
export const MAX_PKT_PAYLOAD = 65516;

export function pktLine(data: string | Buffer): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  if (body.length > MAX_PKT_PAYLOAD) throw new Error(`internal: a pkt-line of ${body.length} bytes is longer than git allows`);
  return Buffer.concat([Buffer.from((body.length + 4).toString(16).padStart(4, '0'), 'ascii'), body]);
}

/** The lines of a whole pkt-line buffer: each payload, or null for a flush (and delim/response-end). Throws on a malformed length. */
export function splitPktLines(buf: Buffer): (Buffer | null)[] {
  const out: (Buffer | null)[] = [];
  let at = 0;
  while (at < buf.length) {
    const head = buf.subarray(at, at + 4).toString('ascii');
    const len = /^[0-9a-f]{4}$/i.test(head) ? parseInt(head, 16) : NaN;
    if (Number.isNaN(len) || len === 3) throw new Error(`not a pkt-line at byte ${at}: ${JSON.stringify(head)}`);
    if (len < 4) {
      out.push(null);
      at += 4;
      continue;
    }
    if (at + len > buf.length) throw new Error(`a pkt-line of ${len} bytes at byte ${at} runs past the end (${buf.length})`);
    out.push(buf.subarray(at + 4, at + len));
    at += len;
  }
  return out;
}
