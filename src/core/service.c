/* service: sd_notify messages (see service.h). */
#include "core/service.h"

#include <stdio.h>
#include <time.h>

#ifdef MXB_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

void service_ready(const char *status)
{
#ifdef MXB_HAVE_SYSTEMD
	sd_notifyf(0, "READY=1\nSTATUS=%s", status ? status : "ready");
#else
	(void)status;
#endif
}

void service_reloading(void)
{
#ifdef MXB_HAVE_SYSTEMD
	/* MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match the reload */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%llu",
		   (unsigned long long)ts.tv_sec * 1000000ULL +
			   (unsigned long long)ts.tv_nsec / 1000ULL);
#endif
}

void service_stopping(void)
{
#ifdef MXB_HAVE_SYSTEMD
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
#endif
}

void service_status(const char *status)
{
#ifdef MXB_HAVE_SYSTEMD
	sd_notifyf(0, "STATUS=%s", status);
#else
	(void)status;
#endif
}
