/** The typed libbpf layer: everything else in sockbypass uses libbpf through here. */
export { BpfObject } from './object.js';
export { BpfMap, numPossibleCpus, type UpdateFlag } from './map.js';
export { BpfProgram, programInfoById } from './program.js';
export { attachSkMsg, attachSockOps, openPinnedLink, openPinnedLinkIfAny, unpinPath, type Link } from './link.js';
export { linkInfo, mapInfo, programInfo, type LinkInfo, type MapInfo, type ProgramInfo } from './info.js';
export {
  BpfError,
  ExistsError,
  NotFoundError,
  NotSupportedError,
  PermissionError,
  VerifierError,
  bpfError,
  strerror,
} from './errors.js';
export { setLibbpfLogHandler, captureLibbpfLog, type LibbpfLevel, type LibbpfLogHandler } from './log.js';
export { RingBuffer, type RecordHandler, type RingBufferOptions } from './ringbuf.js';
export { sockOpsProgramIds } from './query.js';
export { sockhashSupported } from './probe.js';
