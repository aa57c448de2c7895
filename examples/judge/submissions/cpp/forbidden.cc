#include <iostream>
#include <netinet/in.h>
#include <sys/socket.h>

int main() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  std::cout << s << std::endl;
}
