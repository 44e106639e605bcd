/**
 * The raw libbpf surface: the functions of the system's libbpf.so.1 that
 * sockbypass calls, declared once through koffi. Nothing above src/libbpf/
 * imports this file; they use the typed wrappers beside it.
 */
import { createRequire } from 'node:module';
import type * as KoffiModule from 'koffi';

const require = createRequire(import.meta.url);
const koffi = require('koffi') as typeof KoffiModule;

export { koffi };

/** Opaque libbpf handles: pointers that only libbpf dereferences. */
export type Handle = unknown;

function loadLibrary(name: string): KoffiModule.IKoffiLib {
  try {
    return koffi.load(name);
  } catch (cause) {
    const err = new Error(`cannot load ${name}: install Debian's libbpf1 (apt-get install libbpf1)`);
    (err as Error & { cause: unknown }).cause = cause;
    throw err;
  }
}

const lib = loadLibrary('libbpf.so.1');
const libc = loadLibrary('libc.so.6');

koffi.opaque('bpf_object');
koffi.opaque('bpf_program');
koffi.opaque('bpf_map');
koffi.opaque('ring_buffer');

/** libbpf's print callback; on x86_64 and arm64 a va_list argument arrives as a pointer. */
export const PrintFn = koffi.proto('int libbpf_print_fn(int level, const char *fmt, void *args)');

/** libbpf's ring_buffer_sample_fn: called once per record during ring_buffer__consume. */
export const RingBufferSampleFn = koffi.proto('int ring_buffer_sample_fn(void *ctx, void *data, size_t size)');

/** The prefix of struct bpf_object_open_opts (libbpf 1.1) that sockbypass sets. */
export const ObjectOpenOpts = koffi.struct('bpf_object_open_opts', {
  sz: 'size_t',
  object_name: 'const char *',
  relaxed_maps: 'bool',
  pin_root_path: 'const char *',
  _attach_prog_fd: 'uint32',
  kconfig: 'const char *',
  btf_custom_path: 'const char *',
  kernel_log_buf: 'char *',
  kernel_log_size: 'size_t',
  kernel_log_level: 'uint32',
});

/** struct bpf_link_update_opts (libbpf 1.1). */
export const LinkUpdateOpts = koffi.struct('bpf_link_update_opts', {
  sz: 'size_t',
  flags: 'uint32',
  old_prog_fd: 'uint32',
  old_map_fd: 'uint32',
});

export const fn = {
  libbpf_set_print: lib.func('void *libbpf_set_print(libbpf_print_fn *fn)'),
  libbpf_strerror: lib.func('int libbpf_strerror(int err, _Out_ char *buf, size_t size)'),
  libbpf_num_possible_cpus: lib.func('int libbpf_num_possible_cpus(void)'),
  libbpf_probe_bpf_map_type: lib.func('int libbpf_probe_bpf_map_type(int map_type, const void *opts)'),

  bpf_object__open_file: lib.func(
    'bpf_object *bpf_object__open_file(const char *path, const bpf_object_open_opts *opts)',
  ),
  bpf_object__load: lib.func('int bpf_object__load(bpf_object *obj)'),
  bpf_object__close: lib.func('void bpf_object__close(bpf_object *obj)'),
  bpf_object__find_program_by_name: lib.func(
    'bpf_program *bpf_object__find_program_by_name(bpf_object *obj, const char *name)',
  ),
  bpf_object__find_map_by_name: lib.func('bpf_map *bpf_object__find_map_by_name(bpf_object *obj, const char *name)'),
  bpf_object__next_map: lib.func('bpf_map *bpf_object__next_map(const bpf_object *obj, const bpf_map *map)'),
  bpf_object__next_program: lib.func('bpf_program *bpf_object__next_program(const bpf_object *obj, bpf_program *prog)'),

  bpf_program__fd: lib.func('int bpf_program__fd(bpf_program *prog)'),
  bpf_program__name: lib.func('const char *bpf_program__name(bpf_program *prog)'),

  bpf_map__fd: lib.func('int bpf_map__fd(bpf_map *map)'),
  bpf_map__name: lib.func('const char *bpf_map__name(const bpf_map *map)'),
  bpf_map__is_internal: lib.func('bool bpf_map__is_internal(const bpf_map *map)'),
  bpf_map__set_max_entries: lib.func('int bpf_map__set_max_entries(bpf_map *map, uint32 max_entries)'),
  bpf_map__reuse_fd: lib.func('int bpf_map__reuse_fd(bpf_map *map, int fd)'),

  bpf_map_lookup_elem: lib.func('int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)'),
  bpf_map_update_elem: lib.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64 flags)'),
  bpf_map_delete_elem: lib.func('int bpf_map_delete_elem(int fd, const void *key)'),
  bpf_map_get_next_key: lib.func('int bpf_map_get_next_key(int fd, const void *key, _Out_ void *next_key)'),

  bpf_obj_pin: lib.func('int bpf_obj_pin(int fd, const char *pathname)'),
  bpf_obj_get: lib.func('int bpf_obj_get(const char *pathname)'),
  bpf_obj_get_info_by_fd: lib.func('int bpf_obj_get_info_by_fd(int fd, _Inout_ void *info, _Inout_ uint32 *info_len)'),

  bpf_link_create: lib.func('int bpf_link_create(int prog_fd, int target_fd, int attach_type, const void *opts)'),
  bpf_link_detach: lib.func('int bpf_link_detach(int link_fd)'),
  bpf_link_update: lib.func('int bpf_link_update(int link_fd, int new_prog_fd, const bpf_link_update_opts *opts)'),
  bpf_prog_get_fd_by_id: lib.func('int bpf_prog_get_fd_by_id(uint32 id)'),
  bpf_prog_query: lib.func(
    'int bpf_prog_query(int target_fd, int type, uint32 query_flags, _Out_ uint32 *attach_flags, _Out_ uint32 *prog_ids, _Inout_ uint32 *prog_cnt)',
  ),

  ring_buffer__new: lib.func(
    'ring_buffer *ring_buffer__new(int map_fd, ring_buffer_sample_fn *sample_cb, void *ctx, const void *opts)',
  ),
  ring_buffer__consume: lib.func('int ring_buffer__consume(ring_buffer *rb)'),
  ring_buffer__free: lib.func('void ring_buffer__free(ring_buffer *rb)'),

  vsnprintf: libc.func('int vsnprintf(_Out_ uint8_t *buf, size_t size, const char *fmt, void *args)'),
};

/** Kernel UAPI constants sockbypass uses (include/uapi/linux/bpf.h). */
export const BPF = {
  ANY: 0,
  NOEXIST: 1,
  EXIST: 2,
  CGROUP_SOCK_OPS: 3,
  SK_MSG_VERDICT: 7,
  MAP_TYPE_SOCKHASH: 18,
  LINK_TYPE_CGROUP: 3,
  LINK_TYPE_SOCKMAP: 14,
  F_REPLACE: 4,
} as const;

export function errno(): number {
  return koffi.errno();
}
