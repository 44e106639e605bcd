/**
 * The one table of what an application can still tell apart with sockbypass
 * loaded (docs/conformance.md explains each row from the kernel's source).
 * test/conformance.test.ts holds every row to exactly these fields and values:
 * a fix makes its row fail ("the difference is gone": delete the row), and so
 * does any new or changed difference in a listed case.
 */
import type { Value } from './conform.js';

export interface DocumentedDifference {
  case: string;
  /** Every field that differs, with what plain TCP and the bypass observe. */
  fields: Record<string, { plain: Value | undefined; bypass: Value | undefined }>;
  what: string;
  /** Why the kernel does it, in a line; docs/conformance.md has the detail. */
  why: string;
  /** 'sockbypass' (the data plane can fix it), 'in part', 'kernel' (only a kernel change), 'timing' (speed only). */
  fixable: 'sockbypass' | 'in part' | 'kernel' | 'timing';
}

const URGENT_WHY =
  'bpf_tcp_ingress queues the bytes of a redirected sendmsg without its flags: MSG_OOB is dropped, no urgent pointer, no tcp_check_urg on the receiver';

/** oob_drained, over 127.0.0.1 and over ::1 alike. */
const OOB_DRAINED_FIELDS: DocumentedDifference['fields'] = {
  poll: { plain: 'IN|PRI|OUT|RDNORM|WRNORM', bypass: 'IN|OUT|RDNORM|WRNORM' },
  select_except: { plain: 1, bypass: 0 },
  sigurg: { plain: 1, bypass: 0 },
  atmark_before: { plain: 1, bypass: 0 },
  recv1: { plain: 3, bypass: 4 },
  recv1_data: { plain: 'def', bypass: '!def' },
  recv_oob: { plain: 'EINVAL', bypass: 'EAGAIN' },
};

export const DOCUMENTED_DIFFERENCES: readonly DocumentedDifference[] = [
  {
    case: 'oob_unread',
    fields: {
      poll: { plain: 'IN|PRI|OUT|RDNORM|WRNORM', bypass: 'IN|OUT|RDNORM|WRNORM' },
      select_except: { plain: 1, bypass: 0 },
      sigurg: { plain: 1, bypass: 0 },
      recv1: { plain: 3, bypass: 7 },
      recv1_data: { plain: 'abc', bypass: 'abc!def' },
      atmark_after_recv1: { plain: 1, bypass: 0 },
      recv_oob: { plain: 1, bypass: 'EAGAIN' },
      recv_oob_data: { plain: '!', bypass: undefined },
      poll_after_oob: { plain: 'IN|OUT|RDNORM|WRNORM', bypass: 'OUT|WRNORM' },
      recv2: { plain: 3, bypass: 'EAGAIN' },
      recv2_data: { plain: 'def', bypass: undefined },
    },
    what: 'urgent byte delivered inline: no POLLPRI, no select exception, no SIGURG, no mark, recv(MSG_OOB) finds nothing',
    why: URGENT_WHY,
    fixable: 'in part',
  },
  {
    case: 'oob_drained',
    fields: OOB_DRAINED_FIELDS,
    what: 'urgent byte delivered inline (receiver had read everything before it)',
    why: URGENT_WHY,
    fixable: 'sockbypass',
  },
  {
    case: 'oob_drained_v6',
    fields: OOB_DRAINED_FIELDS,
    what: 'the same over ::1',
    why: URGENT_WHY,
    fixable: 'sockbypass',
  },
  {
    case: 'oob_inline',
    fields: {
      poll: { plain: 'IN|PRI|OUT|RDNORM|WRNORM', bypass: 'IN|OUT|RDNORM|WRNORM' },
      select_except: { plain: 1, bypass: 0 },
      sigurg: { plain: 1, bypass: 0 },
      recv1: { plain: 2, bypass: 6 },
      recv1_data: { plain: 'xy', bypass: 'xy!def' },
      atmark_after_recv1: { plain: 1, bypass: 0 },
      recv2: { plain: 4, bypass: 'EAGAIN' },
      recv2_data: { plain: '!def', bypass: undefined },
    },
    what: 'SO_OOBINLINE: bytes in order, but no POLLPRI/SIGURG, and reads do not stop at the mark',
    why: URGENT_WHY,
    fixable: 'in part',
  },
  {
    case: 'oob_none',
    fields: {
      recv_oob: { plain: 'EINVAL', bypass: 1 },
      recv_oob_data: { plain: undefined, bypass: 'a' },
      recv: { plain: 3, bypass: 2 },
      recv_data: { plain: 'abc', bypass: 'bc' },
    },
    what: 'recv(MSG_OOB) with no urgent data returns (and consumes) normal redirected bytes instead of EINVAL',
    why: 'tcp_bpf_recvmsg reads the redirected queue with sk_msg_recvmsg, which honours only MSG_PEEK',
    fixable: 'kernel',
  },
  {
    case: 'waitall',
    fields: { recv_waitall: { plain: '4000', bypass: 'short' } },
    what: 'MSG_WAITALL returns as soon as some redirected bytes are there',
    why: 'tcp_bpf_recvmsg returns what sk_msg_recvmsg copied; neither loops for MSG_WAITALL',
    fixable: 'kernel',
  },
  {
    case: 'waitall_eof',
    fields: { recv_waitall: { plain: '100', bypass: 'short' } },
    what: 'MSG_WAITALL before EOF returns the first message, not all bytes up to EOF',
    why: 'tcp_bpf_recvmsg returns what sk_msg_recvmsg copied; neither loops for MSG_WAITALL',
    fixable: 'kernel',
  },
  {
    case: 'trunc',
    fields: { buffer_after: { plain: 'XXXX', bypass: '0123' } },
    what: 'MSG_TRUNC copies the bytes into the buffer (TCP discards them without copying); return value and stream are the same',
    why: 'sk_msg_recvmsg ignores MSG_TRUNC',
    fixable: 'kernel',
  },
  {
    case: 'rcvlowat',
    fields: {
      poll_5_bytes: { plain: 'none', bypass: 'IN' },
      recv_waited: { plain: 1, bypass: 0 },
    },
    what: 'SO_RCVLOWAT ignored: POLLIN and a read return with fewer bytes queued than the low-water mark',
    why: 'sk_msg_is_readable (tcp_poll) and tcp_bpf_recvmsg look only at whether the redirected queue is empty',
    fixable: 'in part',
  },
  {
    case: 'sndtimeo',
    fields: {
      stopped_before_cap: { plain: 1, bypass: 0 },
      stop: { plain: 'EAGAIN', bypass: 'none' },
      send_blocked: { plain: 1, bypass: 0 },
      pollout_full: { plain: 'none', bypass: 'OUT' },
    },
    what: 'a sender to a peer that does not read never blocks (32 MiB go at once); with SO_SNDTIMEO it never times out',
    why: 'a redirect charges the receiver, not the sender: only the queue bound (tcp_rmem[2], 32 MiB here, unless SO_RCVBUF) moves it to TCP',
    fixable: 'sockbypass',
  },
  {
    case: 'nonblock_full',
    fields: {
      stopped_before_cap: { plain: 1, bypass: 0 },
      stop: { plain: 'EAGAIN', bypass: 'none' },
      pollout_full: { plain: 'none', bypass: 'OUT' },
    },
    what: 'a non-blocking sender to a peer that does not read never sees EAGAIN, POLLOUT never clears',
    why: 'a redirect charges the receiver, not the sender: only the queue bound (tcp_rmem[2], 32 MiB here, unless SO_RCVBUF) moves it to TCP',
    fixable: 'sockbypass',
  },
  {
    case: 'sendfile_sndtimeo',
    fields: {
      short: { plain: 1, bypass: 0 },
      result: { plain: 'partial', bypass: 'all' },
    },
    what: 'sendfile of 32 MiB under SO_SNDTIMEO to a peer that does not read completes instead of timing out',
    why: 'the same as sndtimeo: sendfile ends in tcp_bpf_sendmsg',
    fixable: 'sockbypass',
  },
  {
    case: 'close_unread',
    fields: {
      peer_poll: { plain: 'IN|OUT|ERR|HUP|RDNORM|WRNORM|RDHUP', bypass: 'IN|OUT|RDNORM|WRNORM|RDHUP' },
      peer_recv: { plain: 'ECONNRESET', bypass: 0 },
      peer_send: { plain: 'EPIPE', bypass: 1 },
      sigpipe: { plain: 1, bypass: 0 },
    },
    what: 'close() with unread redirected data sends FIN, not RST: the peer sees EOF, not ECONNRESET',
    why: '__tcp_close counts unread bytes in sk_receive_queue only; redirected bytes sit in the psock queue',
    fixable: 'kernel',
  },
  {
    case: 'tcp_info',
    fields: {
      client_bytes_acked_covers_sent: { plain: 1, bypass: 0 },
      client_bytes_sent_covers_sent: { plain: 1, bypass: 0 },
      server_bytes_received_covers_sent: { plain: 1, bypass: 0 },
      client_data_segs_out_many: { plain: 1, bypass: 0 },
      server_data_segs_in_many: { plain: 1, bypass: 0 },
    },
    what: 'TCP_INFO byte and segment counters do not count redirected bytes',
    why: 'redirected bytes never pass through TCP: tcpi_bytes_*, tcpi_data_segs_* count only what TCP carried',
    fixable: 'kernel',
  },
  {
    case: 'cork',
    fields: { poll_corked: { plain: 'none', bypass: 'IN' } },
    what: 'TCP_CORK does not hold small writes: they arrive before uncork',
    why: 'the redirect delivers each sendmsg at once; cork is a TCP segmentation hint',
    fixable: 'timing',
  },
  {
    case: 'msg_more',
    fields: { poll_more: { plain: 'none', bypass: 'IN' } },
    what: 'MSG_MORE does not hold a small write',
    why: 'the redirect delivers each sendmsg at once; sk_msg programs do not see the flags',
    fixable: 'timing',
  },
  {
    case: 'splice_recv',
    fields: {
      spliced: { plain: 16384, bypass: 0 },
      last: { plain: 'data', bypass: 'EAGAIN' },
      pipe_in_order: { plain: 1, bypass: undefined },
    },
    what: 'splice() from the socket to a pipe sees no redirected bytes (EAGAIN; a blocking socket waits forever)',
    why: 'tcp_splice_read reads sk_receive_queue through tcp_read_sock; it never looks at the psock queue',
    fixable: 'kernel',
  },
  {
    case: 'zerocopy',
    fields: {
      poll_errqueue: { plain: 'ERR', bypass: 'none' },
      recv_errqueue: { plain: 0, bypass: 'EAGAIN' },
      ee_origin_zerocopy: { plain: 1, bypass: undefined },
      ee_errno: { plain: 0, bypass: undefined },
      ee_range: { plain: 1, bypass: undefined },
    },
    what: 'MSG_ZEROCOPY: no completion ever arrives on the error queue (an application waiting for it to reuse its buffer waits forever)',
    why: 'tcp_bpf_sendmsg copies the data into an sk_msg and never creates the zerocopy notification',
    fixable: 'in part',
  },
];
