/* ns per datagram call on loopback: udploop MODE N. MODE: connected (send() on a connected socket: no
   address), same (sendto one destination), alternate (sendto two destinations in turn), echo (sendto itself,
   then recvfrom asking for the sender: one sender). Destinations are UDP ports nobody reads but the echo's. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
  const char *mode = argv[1]; long n = atol(argv[2]);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(5611)}, b = a, self = a, from;
  a.sin_addr.s_addr = htonl(0x7f000002); b.sin_addr.s_addr = htonl(0x7f000003);
  self.sin_addr.s_addr = htonl(0x7f000001); self.sin_port = 0;
  socklen_t len = sizeof(self);
  bind(s, (struct sockaddr *)&self, sizeof(self));
  getsockname(s, (struct sockaddr *)&self, &len);
  if (strcmp(mode, "connected") == 0) connect(s, (struct sockaddr *)&a, sizeof(a));
  char buf[8] = "kg";
  struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < n; i++) {
    if (mode[0] == 'c') send(s, buf, 2, 0);
    else if (mode[0] == 's') sendto(s, buf, 2, 0, (struct sockaddr *)&a, sizeof(a));
    else if (mode[0] == 'a') sendto(s, buf, 2, 0, (struct sockaddr *)((i & 1) ? &b : &a), sizeof(a));
    else { sendto(s, buf, 2, 0, (struct sockaddr *)&self, sizeof(self)); len = sizeof(from);
           recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len); }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("%.0f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n);
  return 0;
}
