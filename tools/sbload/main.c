// SPDX-License-Identifier: GPL-2.0-only
/*
 * sbload - native load generator and byte-integrity checker for sockbypass.
 *
 *   sbload stream     bulk throughput
 *   sbload rr         request/response round-trip latency
 *   sbload crr        connect + request + response + close rate
 *   sbload integrity  bidirectional byte-exactness over many connections
 *
 * Node is far too slow to generate microsecond-scale load, so `sockbypass bench`
 * and the integrity suite drive this binary instead.  Every mode has a deadline
 * and a hard watchdog, prints exactly one JSON object on stdout (also on errors:
 * {"mode":..,"error":..}) and writes diagnostics to stderr.
 *
 * Exit status: 0 ok, 1 integrity failures found, 2 error, 3 watchdog fired.
 *
 * Server and client run as threads of this one process by default (--role both),
 * so that putting the process into a cgroup covers both ends; --role server|client
 * splits them across processes or network namespaces.
 *
 * This file parses the command line; each mode has its own file (stream.c, rr.c,
 * crr.c, integrity*.c) and net.c holds the addresses, sockets and listener they share.
 */

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sbload/sbload.h"

const char *const mode_names[4] = { "stream", "rr", "crr", "integrity" };
const char *const family_names[4] = { "tcp4", "tcp6", "unix", "tcp4mapped" };
const char *const role_names[3] = { "both", "server", "client" };

/* Written by main() before any thread starts, read-only afterwards. */
struct opts O = { .mode_name = "unknown", .corrupt_byte = -1 };

static const char USAGE[] = "usage: sbload <stream|rr|crr|integrity> [options]\n"
			    "\n"
			    "common:\n"
			    "  --family tcp4|tcp6|tcp4mapped|unix  default tcp4 (or taken from --listen/--connect);\n"
			    "                        tcp4mapped = AF_INET client to an IPV6_V6ONLY=0 [::] listener\n"
			    "  --role both|server|client  default both: server and client threads in this process\n"
			    "  --listen ADDR:PORT|/path|@name  server address (default loopback, port 0;\n"
			    "                        tcp4mapped: [::]:0; unix: an abstract name)\n"
			    "  --connect ADDR:PORT|/path|@name  client target (required with --role client)\n"
			    "  --bind ADDR:PORT      client source address (SO_REUSEADDR); a non-zero PORT\n"
			    "                        is used as PORT+i by connection i\n"
			    "  --ready-file PATH     once listening, the server writes its port (unix: name) there\n"
			    "  --seconds S           run time (stream, rr, crr; default 5) or deadline\n"
			    "                        (integrity; default 60); fractions allowed\n"
			    "  --timeout S           hard watchdog (default deadline + 10 s), exit 3\n"
			    "stream:    --size BYTES (write size, default 128K) --streams N (default 1)\n"
			    "           --read-size BYTES (default max(size, 64K))\n"
			    "rr:        --size BYTES (each direction, default 64) --count N --warmup N (default 500)\n"
			    "crr:       --size BYTES (default 64) --streams N (parallel clients, default 1)\n"
			    "           --no-linger0 (default: SO_LINGER{1,0}, close sends RST)\n"
			    "integrity: --connections N (default 100) --bytes B (per direction, default 256K)\n"
			    "           --seed X --early-data --server-first\n"
			    "BYTES accept K, M, G suffixes (powers of 1024).\n"
			    "Output: one JSON object on stdout. Exit 0 ok, 1 integrity failures, 2 error, 3 watchdog.\n";

enum {
	OPT_FAMILY = 256, OPT_ROLE, OPT_LISTEN, OPT_CONNECT, OPT_BIND, OPT_READY, OPT_SECONDS, OPT_TIMEOUT,
	OPT_SIZE, OPT_READ_SIZE, OPT_STREAMS, OPT_COUNT, OPT_WARMUP, OPT_LINGER0, OPT_NO_LINGER0,
	OPT_CONNECTIONS, OPT_BYTES, OPT_SEED, OPT_EARLY, OPT_SERVER_FIRST, OPT_CORRUPT, OPT_HELP,
};

static const struct option long_opts[] = {
	{ "family", required_argument, NULL, OPT_FAMILY },
	{ "role", required_argument, NULL, OPT_ROLE },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "connect", required_argument, NULL, OPT_CONNECT },
	{ "bind", required_argument, NULL, OPT_BIND },
	{ "ready-file", required_argument, NULL, OPT_READY },
	{ "seconds", required_argument, NULL, OPT_SECONDS },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "read-size", required_argument, NULL, OPT_READ_SIZE },
	{ "streams", required_argument, NULL, OPT_STREAMS },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "warmup", required_argument, NULL, OPT_WARMUP },
	{ "linger0", no_argument, NULL, OPT_LINGER0 },
	{ "no-linger0", no_argument, NULL, OPT_NO_LINGER0 },
	{ "connections", required_argument, NULL, OPT_CONNECTIONS },
	{ "bytes", required_argument, NULL, OPT_BYTES },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "early-data", no_argument, NULL, OPT_EARLY },
	{ "server-first", no_argument, NULL, OPT_SERVER_FIRST },
	/* Test hook, deliberately not in usage(): corrupt this offset of connection 0's
	 * client->server stream on the wire, after hashing. */
	{ "corrupt-test-byte", required_argument, NULL, OPT_CORRUPT },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static enum family parse_family(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, family_names[i]))
			return (enum family)i;
	usage_error("--family: unknown family '%s'", s);
}

static enum role parse_role(const char *s)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(s, role_names[i]))
			return (enum role)i;
	usage_error("--role: unknown role '%s'", s);
}

static void parse_args(int argc, char **argv)
{
	bool size_set = false, read_size_set = false;
	int c;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(USAGE, argc < 2 ? stderr : stdout);
		if (argc < 2)
			fatal("missing mode");
		exit(0);
	}
	for (int i = 0; i < 4; i++)
		if (!strcmp(argv[1], mode_names[i])) {
			O.mode = (enum mode)i;
			O.mode_name = mode_names[i];
			tool_set_mode(O.mode_name);
		}
	if (!strcmp(O.mode_name, "unknown"))
		usage_error("unknown mode '%s'", argv[1]);
	O.family = FAM_TCP4;
	O.role = ROLE_BOTH;
	O.streams = 1;
	O.warmup = 500;
	O.linger0 = true;
	O.connections = 100;
	O.bytes = 256 * KiB;
	O.seed = 1;
	optind = 2;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_FAMILY: O.family = parse_family(optarg); O.family_set = true; break;
		case OPT_ROLE: O.role = parse_role(optarg); break;
		case OPT_LISTEN: O.listen = optarg; break;
		case OPT_CONNECT: O.connect = optarg; break;
		case OPT_BIND: O.bind = optarg; break;
		case OPT_READY: O.ready_file = optarg; break;
		case OPT_SECONDS: O.seconds = parse_secs("--seconds", optarg); O.seconds_set = true; break;
		case OPT_TIMEOUT: O.timeout = parse_secs("--timeout", optarg); break;
		case OPT_SIZE: O.size = (size_t)parse_u64("--size", optarg, 1, 64 * MiB); size_set = true; break;
		case OPT_READ_SIZE:
			O.read_size = (size_t)parse_u64("--read-size", optarg, 1, 64 * MiB);
			read_size_set = true;
			break;
		case OPT_STREAMS: O.streams = (int)parse_u64("--streams", optarg, 1, 256); break;
		case OPT_COUNT: O.count = parse_u64("--count", optarg, 1, 1ULL << 32); break;
		case OPT_WARMUP: O.warmup = parse_u64("--warmup", optarg, 0, 1ULL << 32); break;
		case OPT_LINGER0: O.linger0 = true; break;
		case OPT_NO_LINGER0: O.linger0 = false; break;
		case OPT_CONNECTIONS: O.connections = (int)parse_u64("--connections", optarg, 1, 100000); break;
		case OPT_BYTES: O.bytes = parse_u64("--bytes", optarg, 0, 1ULL << 40); break;
		case OPT_SEED: O.seed = parse_u64("--seed", optarg, 0, UINT64_MAX); break;
		case OPT_EARLY: O.early_data = true; break;
		case OPT_SERVER_FIRST: O.server_first = true; break;
		case OPT_CORRUPT: O.corrupt_byte = (int64_t)parse_u64("--corrupt-test-byte", optarg, 0, 1ULL << 40); break;
		case OPT_HELP: fputs(USAGE, stdout); exit(0);
		default:
			usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);

	/* Without --family, follow the address given. */
	if (!O.family_set && (O.listen || O.connect)) {
		struct addr a;

		parse_addr(O.listen ? "--listen" : "--connect", O.listen ? O.listen : O.connect, &a);
		O.family = addr_af(&a) == AF_UNIX ? FAM_UNIX : addr_af(&a) == AF_INET6 ? FAM_TCP6 : FAM_TCP4;
	}
	if (O.family == FAM_UNIX && O.bind)
		usage_error("--bind applies to TCP only");
	if (O.role == ROLE_CLIENT && !O.connect)
		usage_error("--role client needs --connect");
	if (O.role == ROLE_SERVER && O.connect)
		usage_error("--connect is for the client role");
	if (O.mode != MODE_INTEGRITY && (O.early_data || O.server_first || O.corrupt_byte >= 0))
		usage_error("--early-data, --server-first and --corrupt-test-byte are integrity options");
	if (!size_set)
		O.size = O.mode == MODE_STREAM ? 128 * KiB : 64;
	if (!read_size_set)
		O.read_size = O.size > 64 * KiB ? O.size : 64 * KiB;
	if (!O.seconds_set)
		O.seconds = O.mode == MODE_INTEGRITY ? 60 : O.mode == MODE_RR && O.count ? 60 : 5;
	if (!O.timeout)
		O.timeout = O.seconds + 10;
}

int main(int argc, char **argv)
{
	tool_init("sbload", USAGE);
	tool_set_mode(O.mode_name);
	parse_args(argc, argv);
	/* A peer that resets must show up as EPIPE/ECONNRESET, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	watchdog_arm(O.timeout);
	switch (O.mode) {
	case MODE_STREAM:
		return mode_stream();
	case MODE_RR:
		return mode_rr();
	case MODE_CRR:
		return mode_crr();
	case MODE_INTEGRITY:
		return mode_integrity();
	}
	return 2;
}
