/* The floor receiver: what the least a recorder can do costs on this machine.
 *
 * One thread: epoll over one UDP socket per stream, recv until EAGAIN, skip the RTP header,
 * decode G.711 µ-law to 16-bit PCM, append to the stream's buffer, write the buffer to the
 * stream's file when full. No jitter buffer, no timeline, no SSRC checks: callvault's CPU per
 * packet is reported as a ratio to this one, measured by the same load generator in the same run.
 *
 *   floor PORT_BASE STREAMS DIR   binds 127.0.0.1:PORT_BASE … PORT_BASE+STREAMS-1, prints
 *                                 "ready"; on SIGTERM flushes and prints "packets N".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFFER_SAMPLES 8000 /* one second at 8 kHz */

struct stream {
    int socket;
    int file;
    size_t used;
    int16_t pcm[BUFFER_SAMPLES];
};

static volatile sig_atomic_t stopping;
static int16_t ulaw[256];

static void on_term(int sig) { (void)sig; stopping = 1; }

static int16_t ulaw_decode(uint8_t u) {
    u = ~u;
    int t = ((u & 0x0f) << 3) + 0x84;
    t <<= (u & 0x70) >> 4;
    return (int16_t)((u & 0x80) ? 0x84 - t : t - 0x84);
}

static void flush(struct stream *s) {
    if (s->used == 0) return;
    if (s->file < 0 || write(s->file, s->pcm, s->used * 2) < 0) { /* counted as received anyway */ }
    s->used = 0;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: floor PORT_BASE STREAMS DIR\n"); return 2; }
    int base = atoi(argv[1]), count = atoi(argv[2]);
    if (base <= 0 || count <= 0 || base + count > 65536) { fprintf(stderr, "bad ports\n"); return 2; }
    for (int i = 0; i < 256; i++) ulaw[i] = ulaw_decode((uint8_t)i);
    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);

    struct stream *streams = calloc((size_t)count, sizeof *streams);
    int epoll = epoll_create1(0);
    if (!streams || epoll < 0) { perror("setup"); return 1; }
    for (int i = 0; i < count; i++) {
        struct stream *s = &streams[i];
        s->socket = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(base + i))};
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (s->socket < 0 || bind(s->socket, (struct sockaddr *)&addr, sizeof addr) < 0) {
            fprintf(stderr, "binding port %d: %s\n", base + i, strerror(errno));
            return 1;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/stream-%d.pcm", argv[3], i);
        s->file = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(epoll, EPOLL_CTL_ADD, s->socket, &ev) < 0) { perror("epoll_ctl"); return 1; }
    }
    printf("ready\n");
    fflush(stdout);

    unsigned long long packets = 0;
    uint8_t packet[2048];
    struct epoll_event events[256];
    while (!stopping) {
        int n = epoll_wait(epoll, events, 256, 200);
        for (int e = 0; e < n; e++) {
            struct stream *s = &streams[events[e].data.u32];
            for (;;) {
                ssize_t len = recv(s->socket, packet, sizeof packet, 0);
                if (len < 0) break; /* EAGAIN: this socket is drained */
                if (len < 12 || (packet[0] >> 6) != 2) continue;
                size_t header = 12 + 4 * (size_t)(packet[0] & 0x0f);
                if ((size_t)len <= header) continue;
                packets++;
                size_t samples = (size_t)len - header;
                if (s->used + samples > BUFFER_SAMPLES) flush(s);
                for (size_t k = 0; k < samples && s->used < BUFFER_SAMPLES; k++)
                    s->pcm[s->used++] = ulaw[packet[header + k]];
            }
        }
    }
    for (int i = 0; i < count; i++) { flush(&streams[i]); close(streams[i].file); close(streams[i].socket); }
    printf("packets %llu\n", packets);
    return 0;
}
