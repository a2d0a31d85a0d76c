/*
 * service: talking to the service manager (systemd's sd_notify protocol, through
 * libsystemd), so that a Type=notify unit knows when the daemon is ready (ports
 * listening, state open), reloading (SIGHUP) and stopping.  Without NOTIFY_SOCKET in
 * the environment (not started by systemd) every call does nothing; so does a build
 * without libsystemd.
 */
#ifndef MXB_CORE_SERVICE_H
#define MXB_CORE_SERVICE_H

void service_ready(const char *status);      /* READY=1 and STATUS= */
void service_reloading(void);                /* RELOADING=1 with MONOTONIC_USEC= */
void service_stopping(void);                 /* STOPPING=1 */
void service_status(const char *status);     /* STATUS= only */

#endif
