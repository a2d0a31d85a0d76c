/*
 * cmd_analyze: `mxbait analyze [OPTIONS] FILE...` prints one JSON object per message
 * (.eml files, mboxes, Maildirs, directories); `--store -d DIR` also records the
 * analyses in DIR/analysis.db; `--daemon -d DIR` runs the analyzer process mode
 * (analyzer_run) until SIGTERM/SIGINT.  Progress (messages, rate) goes to stderr only
 * when stderr is a terminal, so piped output stays clean.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "analyze/adb.h"
#include "analyze/analyze.h"
#include "analyze/analyzer.h"
#include "analyze/input.h"
#include "analyze/url.h"
#include "analyze/worker.h"
#include "cli/cli.h"
#include "core/anlaunch.h"
#include "core/log.h"
#include "core/sandbox.h"

static const char usage_text[] =
	"usage: mxbait analyze [OPTIONS] FILE|MBOX|MAILDIR...\n"
	"       mxbait analyze --daemon -d DATA_DIR\n"
	"  -d, --data-dir DIR     data directory (for --store and --daemon)\n"
	"      --store            record the analyses in DIR/analysis.db\n"
	"      --daemon           analyse DIR/spool/new as messages arrive\n"
	"      --quiet            no JSON on stdout (with --store)\n"
	"      --max-depth N      MIME nesting limit (20)\n"
	"      --max-parts N      MIME parts limit (2000)\n"
	"      --max-decoded N    decoded bytes limit per message (67108864)\n"
	"      --max-links N      distinct links limit (5000)\n"
	"      --max-text N       text bytes kept per message for links/campaigns (4194304)\n"
	"      --max-recipients N distinct recipients limit (10000)\n"
	"      --psl FILE         a newer public suffix list\n"
	"  Started by mxbait serve with analyzer_user set (not for use by hand):\n"
	"      --launcher-fd FD   (with --daemon) get workers from the launcher on FD\n"
	"      --launcher --worker-user U --run-as D   the launcher, on fd 3\n"
	"      --worker           the analysis worker, on fd 3\n";

struct run {
	struct analyze_limits lim;
	struct adb *db;
	bool quiet;
	bool progress;
	size_t n;
	uint64_t bytes;
	double t0, tlast;
	struct buf out;
	int errors;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int one(void *arg, const char *source, const void *data, size_t len)
{
	struct run *r = arg;
	struct analysis *a = analyze_message(data, len, &r->lim, NULL);
	if (!a) {
		r->errors++;
		return 0;
	}
	if (r->db && adb_store(r->db, a, source) < 0) {
		fprintf(stderr, "mxbait analyze: %s: could not store the analysis\n", source);
		r->errors++;
	}
	if (!r->quiet) {
		buf_reset(&r->out);
		analysis_to_json(a, source, &r->out);
		buf_putc(&r->out, '\n');
		fwrite(r->out.data, 1, r->out.len, stdout);
	}
	analysis_free(&a);
	r->n++;
	r->bytes += len;
	if (r->progress) {
		double t = now_s();
		if (t - r->tlast > 0.5) {
			double el = t - r->t0;
			fprintf(stderr, "\r%zu messages, %.0f msg/s, %.1f MB/s   ", r->n, r->n / el,
				r->bytes / el / 1e6);
			r->tlast = t;
		}
	}
	return 0;
}

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	g_stop = 1;
}

int cmd_analyze(int argc, char **argv)
{
	static const struct option opts[] = {
		{"data-dir", required_argument, NULL, 'd'}, {"store", no_argument, NULL, 's'},
		{"daemon", no_argument, NULL, 'D'},        {"quiet", no_argument, NULL, 'q'},
		{"max-depth", required_argument, NULL, 1}, {"max-parts", required_argument, NULL, 2},
		{"max-decoded", required_argument, NULL, 3},
		{"max-links", required_argument, NULL, 4}, {"psl", required_argument, NULL, 5},
		{"max-text", required_argument, NULL, 6},
		{"max-recipients", required_argument, NULL, 7},
		{"launcher-fd", required_argument, NULL, 8}, {"launcher", no_argument, NULL, 9},
		{"worker-user", required_argument, NULL, 10}, {"run-as", required_argument, NULL, 11},
		{"worker", no_argument, NULL, 12},
		{"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
	};
	struct run r = {0};
	const char *data_dir = NULL, *psl = NULL;
	bool store = false, daemon_mode = false, launcher = false, worker = false;
	const char *worker_user = NULL, *run_as = NULL;
	int launcher_fd = -1;
	analyze_limits_default(&r.lim);
	optind = 1;
	int ch;
	while ((ch = getopt_long(argc, argv, "d:hq", opts, NULL)) != -1) {
		char *end = NULL;
		unsigned long long v = 0;
		if ((ch >= 1 && ch <= 4) || ch == 6 || ch == 7) {
			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (errno || !end || *end || v == 0 || v > (1ull << 40)) {
				fprintf(stderr, "mxbait analyze: bad number: %s\n", optarg);
				return 2;
			}
		}
		switch (ch) {
		case 'd': data_dir = optarg; break;
		case 's': store = true; break;
		case 'D': daemon_mode = true; break;
		case 'q': r.quiet = true; break;
		case 1: r.lim.max_depth = (unsigned)(v > 1000 ? 1000 : v); break;
		case 2: r.lim.max_parts = (unsigned)(v > 1000000 ? 1000000 : v); break;
		case 3: r.lim.max_decoded = (size_t)v; break;
		case 4: r.lim.max_links = (unsigned)(v > 1000000 ? 1000000 : v); break;
		case 5: psl = optarg; break;
		case 6: r.lim.max_text = (size_t)v; break;
		case 7: r.lim.max_recipients = (unsigned)(v > 10000000 ? 10000000 : v); break;
		case 8: launcher_fd = atoi(optarg); break;
		case 9: launcher = true; break;
		case 10: worker_user = optarg; break;
		case 11: run_as = optarg; break;
		case 12: worker = true; break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return 2;
		}
	}
	if (launcher) { /* nothing loaded: it parses nothing (core/anlaunch.h) */
		if (!worker_user || !run_as) {
			fputs(usage_text, stderr);
			return 2;
		}
		return anlaunch_main(3, worker_user, run_as, psl);
	}
	if (url_psl_init(psl) < 0) {
		fprintf(stderr, "mxbait analyze: cannot load a public suffix list\n");
		return 1;
	}
	analyze_global_init();
	if (worker) {
		/* Libraries loaded: no path into the data directory from here on. */
		struct sandbox_report sr;
		char *serr = NULL;
		if (sandbox_enter_worker(psl, &sr, &serr) != 0) {
			log_msg(LOG_ERR, NULL, "analyzer worker sandbox: %s", serr ? serr : "?");
			free(serr);
			return 1;
		}
		return worker_serve(3) == 0 ? 0 : 1;
	}
	if (daemon_mode) {
		if (!data_dir) {
			fputs(usage_text, stderr);
			return 2;
		}
		/* Libraries loaded, nothing read yet: the walls go up (core/sandbox.h). */
		struct sandbox_report sr;
		char *serr = NULL;
		if (sandbox_enter_analyzer(data_dir, psl, launcher_fd >= 0, &sr, &serr) != 0) {
			log_msg(LOG_ERR, NULL, "analyzer sandbox: %s", serr ? serr : "?");
			free(serr);
			return 1;
		}
		if (sr.landlock_abi)
			log_msg(LOG_INFO, NULL, "analyzer sandbox: seccomp (%u system calls), "
				"Landlock ABI %d, no capabilities", sr.syscalls, sr.landlock_abi);
		else
			log_msg(LOG_WARNING, NULL, "analyzer sandbox: seccomp (%u system calls), "
				"no capabilities; the kernel has no Landlock: file access is "
				"bounded by the user's permissions only", sr.syscalls);
		struct sigaction sa = {0};
		sa.sa_handler = on_signal;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		if (launcher_fd >= 0)
			analyzer_set_launcher(launcher_fd);
		return analyzer_run_with(data_dir, &r.lim, &g_stop) == 0 ? 0 : 1;
	}
	if (optind >= argc) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (store) {
		if (!data_dir) {
			fprintf(stderr, "mxbait analyze: --store needs -d DATA_DIR\n");
			return 2;
		}
		char *err = NULL;
		r.db = adb_open(data_dir, &err);
		if (!r.db) {
			fprintf(stderr, "mxbait analyze: %s\n", err ? err : "cannot open analysis.db");
			free(err);
			return 1;
		}
	}
	buf_init(&r.out, 0);
	r.progress = isatty(STDERR_FILENO);
	r.t0 = r.tlast = now_s();
	int rc = 0;
	for (int i = optind; i < argc; i++) {
		if (an_input_each(argv[i], one, &r) < 0) {
			fprintf(stderr, "mxbait analyze: %s: %s\n", argv[i], strerror(errno));
			rc = 1;
		}
	}
	if (r.progress) {
		double el = now_s() - r.t0;
		fprintf(stderr, "\r%zu messages, %.0f msg/s, %.1f MB/s   \n", r.n,
			el > 0 ? r.n / el : 0.0, el > 0 ? r.bytes / el / 1e6 : 0.0);
	}
	fflush(stdout);
	buf_free(&r.out);
	adb_close(&r.db);
	return rc ? rc : r.errors ? 1 : 0;
}
