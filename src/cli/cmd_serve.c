/*
 * cmd_serve: `mxbait serve [-c FILE] [-f]`: run the honeypot daemon.
 *
 * Without -c the embedded defaults apply (loopback high ports, ./mxbait-data).  The
 * daemon stays in the foreground and logs to stderr (-f is accepted for clarity and
 * for service managers that expect it).  Exit codes: 0 clean shutdown, 1 start-up
 * error (configuration, bind, data directory), 2 usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/serve.h"

static void serve_usage(FILE *f)
{
	fprintf(f, "usage: mxbait serve [-c FILE] [-f]\n"
		   "  -c, --config FILE  configuration file (mxbait.conf(5)); default:\n"
		   "                     " MXB_DEFAULT_CONFIG " when it exists, else the embedded\n"
		   "                     defaults (loopback ports 2525/2587/2465 SMTP,\n"
		   "                     2143/2993 IMAP, 2110/2995 POP3; ./mxbait-data)\n"
		   "  -f, --foreground   stay in the foreground (the default)\n");
}

int cmd_serve(int argc, char **argv)
{
	const char *conf = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			serve_usage(stdout);
			return 0;
		} else if (!strcmp(a, "-f") || !strcmp(a, "--foreground")) {
			continue;
		} else if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "mxbait serve: %s needs a file name\n", a);
				serve_usage(stderr);
				return 2;
			}
			conf = argv[++i];
		} else if (!strncmp(a, "--config=", 9)) {
			conf = a + 9;
		} else {
			fprintf(stderr, "mxbait serve: unknown argument '%s'\n", a);
			serve_usage(stderr);
			return 2;
		}
	}
	if (!conf)
		conf = cli_default_config();
	struct mxb_config cfg;
	config_defaults(&cfg);
	if (conf) {
		char *err = NULL;
		if (config_load(&cfg, conf, &err) != 0) {
			fprintf(stderr, "mxbait: configuration error: %s\n", err ? err : conf);
			free(err);
			config_free(&cfg);
			return 1;
		}
	}
	int rc = serve_run(&cfg);
	config_free(&cfg);
	return rc;
}
