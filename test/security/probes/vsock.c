/*
 * vsock: AF_VSOCK sockets talk to the hypervisor and other VMs by context ID,
 * and are not network-namespaced: a sandbox in a new network namespace still
 * has them (vsock(7)). Only the socket is made; nothing is ever connected,
 * since what listens on the host side is the hypervisor's.
 */
#include <sys/socket.h>

#include "escape.h"

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

int main(void) {
  int s = socket(AF_VSOCK, SOCK_STREAM, 0);
  if (s >= 0) escaped("socket(AF_VSOCK): the hypervisor's sockets are in reach");
  contained("socket(AF_VSOCK): %s", err());
}
