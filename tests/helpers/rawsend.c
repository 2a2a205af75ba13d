/*
 * rawsend: what a hostile container can do with CAP_NET_RAW, which
 * Docker's default profile keeps. It writes whole Ethernet frames to an
 * interface with an AF_PACKET socket, so nothing in the container's own
 * stack (its routes, its loopback) decides where they go: each frame
 * carries one UDP datagram from the interface's own address to the given
 * IPv4 address and port, addressed at link level to the given MAC (the
 * gateway's, to reach the host's IP stack).
 *
 *   rawsend IFACE DST_MAC DST_IP:PORT PAYLOAD [DST_IP:PORT PAYLOAD]...
 *
 * The datagrams are sent in order, one frame each, from one CPU: a veth
 * queues what is sent on the sending CPU's backlog, so the receiving host
 * handles the frames in this order too, and a test can send a harmless
 * frame last and wait for it as a sign that the earlier ones were handled.
 * Exit 0 when all were sent, 1 with a message on stderr otherwise. Built
 * with `cc -static` by tests/escapes_network.rs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
    perror(what);
    exit(1);
}

static uint16_t checksum(const void *data, size_t length) {
    const uint8_t *bytes = data;
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < length; i += 2)
        sum += (uint32_t)bytes[i] << 8 | bytes[i + 1];
    if (length & 1)
        sum += (uint32_t)bytes[length - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return htons((uint16_t)~sum);
}

static void parse_mac(const char *text, uint8_t mac[6]) {
    unsigned int b[6];
    if (sscanf(text, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6) {
        fprintf(stderr, "rawsend: %s is not a MAC address\n", text);
        exit(1);
    }
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)b[i];
}

static void parse_target(const char *text, struct in_addr *ip, uint16_t *port) {
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof host) {
        fprintf(stderr, "rawsend: %s is not IP:PORT\n", text);
        exit(1);
    }
    memcpy(host, text, colon - text);
    host[colon - text] = 0;
    if (inet_pton(AF_INET, host, ip) != 1 || atoi(colon + 1) <= 0) {
        fprintf(stderr, "rawsend: %s is not IP:PORT\n", text);
        exit(1);
    }
    *port = htons((uint16_t)atoi(colon + 1));
}

int main(int argc, char **argv) {
    if (argc < 5 || (argc - 3) % 2 != 0) {
        fprintf(stderr, "usage: rawsend IFACE DST_MAC DST_IP:PORT PAYLOAD [DST_IP:PORT PAYLOAD]...\n");
        return 2;
    }
    int cpu = sched_getcpu();
    if (cpu >= 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        if (sched_setaffinity(0, sizeof one, &one) < 0)
            perror("rawsend: warning: sched_setaffinity (frames may be handled out of order)");
    }
    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP));
    if (fd < 0)
        die("rawsend: socket(AF_PACKET)");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", argv[1]);
    if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0)
        die("rawsend: SIOCGIFINDEX");
    int index = ifr.ifr_ifindex;
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
        die("rawsend: SIOCGIFHWADDR");
    uint8_t source_mac[6];
    memcpy(source_mac, ifr.ifr_hwaddr.sa_data, 6);
    ifr.ifr_addr.sa_family = AF_INET;
    if (ioctl(fd, SIOCGIFADDR, &ifr) < 0)
        die("rawsend: SIOCGIFADDR");
    struct in_addr source_ip = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr;
    uint8_t destination_mac[6];
    parse_mac(argv[2], destination_mac);

    for (int arg = 3; arg + 1 < argc; arg += 2) {
        struct in_addr ip;
        uint16_t port;
        parse_target(argv[arg], &ip, &port);
        const char *payload = argv[arg + 1];
        size_t payload_length = strlen(payload);
        uint8_t frame[1514];
        size_t length = sizeof(struct ether_header) + sizeof(struct iphdr) + sizeof(struct udphdr) + payload_length;
        if (length > sizeof frame) {
            fprintf(stderr, "rawsend: payload too long\n");
            return 1;
        }
        memset(frame, 0, sizeof frame);
        struct ether_header *eth = (struct ether_header *)frame;
        memcpy(eth->ether_dhost, destination_mac, 6);
        memcpy(eth->ether_shost, source_mac, 6);
        eth->ether_type = htons(ETHERTYPE_IP);
        struct iphdr *iph = (struct iphdr *)(eth + 1);
        iph->version = 4;
        iph->ihl = 5;
        iph->ttl = 64;
        iph->protocol = IPPROTO_UDP;
        iph->tot_len = htons((uint16_t)(length - sizeof *eth));
        iph->saddr = source_ip.s_addr;
        iph->daddr = ip.s_addr;
        iph->check = checksum(iph, sizeof *iph);
        struct udphdr *udp = (struct udphdr *)(iph + 1);
        udp->source = htons(40000);
        udp->dest = port;
        udp->len = htons((uint16_t)(sizeof *udp + payload_length));
        udp->check = 0; /* optional for UDP over IPv4 */
        memcpy(udp + 1, payload, payload_length);

        struct sockaddr_ll to;
        memset(&to, 0, sizeof to);
        to.sll_family = AF_PACKET;
        to.sll_ifindex = index;
        to.sll_halen = 6;
        memcpy(to.sll_addr, destination_mac, 6);
        if (sendto(fd, frame, length, 0, (struct sockaddr *)&to, sizeof to) != (ssize_t)length)
            die("rawsend: sendto");
    }
    close(fd);
    return 0;
}
