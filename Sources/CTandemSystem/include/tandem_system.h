// System calls Swift cannot call directly (variadic in C, or needing headers its Glibc module conflicts with).
#ifndef TANDEM_SYSTEM_H
#define TANDEM_SYSTEM_H

#ifdef __linux__
#include <signal.h>
#include <sys/prctl.h>
#endif

/// Asks the kernel to send SIGKILL to this process when its parent exits. Returns 0 on success, -1 where the
/// system has no such request (not Linux) or refuses it.
static inline int tandem_kill_with_parent(void) {
#ifdef __linux__
    return prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
#else
    return -1;
#endif
}

/// Creates the TUN interface `name` (layer 3: raw IP packets, no packet-information header) and returns the file
/// descriptor that reads the packets it sends and writes the packets it receives; -1 with errno set on failure (no
/// /dev/net/tun, not permitted, a name too long or taken).
int tandem_tun_open(const char *name);

/// Sets the calling thread's timer slack (how late the kernel may end a sleep, to batch wake-ups) to
/// `nanoseconds`. Returns 0 on success, -1 where the system has no such setting.
static inline int tandem_set_timer_slack(unsigned long nanoseconds) {
#ifdef __linux__
    return prctl(PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0);
#else
    (void)nanoseconds;
    return -1;
#endif
}

#endif
