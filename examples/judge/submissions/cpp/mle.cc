#include <iostream>
#include <vector>

int main() {
  std::vector<int> v(300 * 1000 * 1000, 1); /* 1.2 GB, written */
  std::cout << v.back() << std::endl;
}
