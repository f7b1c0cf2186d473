// The calls of tandem_system.h that need headers Swift's Glibc module conflicts with (linux/if.h against net/if.h).
#include "tandem_system.h"

#include <errno.h>

#ifdef __linux__
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#endif

int tandem_tun_open(const char *name) {
#ifdef __linux__
    if (strlen(name) >= IFNAMSIZ) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int descriptor = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (descriptor < 0) return -1;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    request.ifr_flags = IFF_TUN | IFF_NO_PI;
    memcpy(request.ifr_name, name, strlen(name));
    if (ioctl(descriptor, TUNSETIFF, &request) < 0) {
        int saved = errno;
        close(descriptor);
        errno = saved;
        return -1;
    }
    return descriptor;
#else
    (void)name;
    errno = ENOSYS;
    return -1;
#endif
}
