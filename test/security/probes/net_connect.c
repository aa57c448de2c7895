/* net_connect PORT: reach a TCP listener on the host's loopback. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "escape.h"

int main(int argc, char **argv) {
  int port = atoi(arg(argc, argv, 1, "1"));
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) contained("socket: %s", err());
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) escaped("connected to 127.0.0.1:%d", port);
  contained("connect 127.0.0.1:%d: %s", port, err());
}
