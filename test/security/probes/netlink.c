/*
 * netlink: dump the network interfaces with rtnetlink (rtnetlink(7)). The
 * sandbox's network namespace has only lo; seeing any other interface means
 * the host's network is in reach.
 */
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include "escape.h"

int main(void) {
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (s < 0) contained("socket(AF_NETLINK): %s", err());
  struct {
    struct nlmsghdr h;
    struct ifinfomsg i;
  } req = {{NLMSG_LENGTH(sizeof(struct ifinfomsg)), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0}, {0}};
  if (send(s, &req, req.h.nlmsg_len, 0) < 0) contained("send: %s", err());
  char buf[32768], names[1024] = "";
  int others = 0;
  for (;;) {
    long n = recv(s, buf, sizeof buf, 0);
    if (n <= 0) break;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE) goto done;
      if (h->nlmsg_type != RTM_NEWLINK) continue;
      struct ifinfomsg *ifi = NLMSG_DATA(h);
      int len = h->nlmsg_len - NLMSG_LENGTH(sizeof *ifi);
      for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type != IFLA_IFNAME) continue;
        const char *name = RTA_DATA(a);
        if (strcmp(name, "lo") != 0) others++;
        if (strlen(names) + strlen(name) + 2 < sizeof names) {
          strcat(names, " ");
          strcat(names, name);
        }
      }
    }
  }
done:
  if (others) escaped("rtnetlink shows the host's interfaces:%s", names);
  contained("rtnetlink shows only:%s", names);
}
