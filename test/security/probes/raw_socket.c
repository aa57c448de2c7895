/* raw_socket: raw IP and packet sockets need CAP_NET_RAW (raw(7), packet(7)). */
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/if_ether.h>

#include "escape.h"

int main(void) {
  int s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
  if (s >= 0) escaped("socket(AF_INET, SOCK_RAW)");
  const char *raw = err();
  s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  if (s >= 0) escaped("socket(AF_PACKET, SOCK_RAW)");
  contained("SOCK_RAW: %s, AF_PACKET: %s", raw, err());
}
