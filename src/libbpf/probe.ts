/** What the running kernel supports, asked through libbpf's feature probes. */
import { BPF, fn } from './ffi.js';
import { bpfError } from './errors.js';

/** Whether the kernel can create a sockhash; throws BpfError when the probe itself fails. */
export function sockhashSupported(): boolean {
  const ret = fn.libbpf_probe_bpf_map_type(BPF.MAP_TYPE_SOCKHASH, null) as number;
  if (ret < 0) throw bpfError('probe BPF_MAP_TYPE_SOCKHASH', ret);
  return ret > 0;
}
