/*
 * Host test program for echoloc_protocol.c (run by test/test_firmware_protocol.py).
 *
 *   host_test frames OUT   write one frame of every device->host type, with deterministic
 *                          contents, to the file OUT ('-' for stdout)
 *   host_test parse IN     parse host->device command frames from the file IN and print one
 *                          JSON object per parsed command, then one with the parser counters
 *
 * The contents written by 'frames' are mirrored in the Python test; change both together.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../echoloc_protocol.h"

#define ECHO_CHANNELS 4u
#define ECHO_SAMPLES 100u

static int write_all(FILE *f, const uint8_t *data, size_t len)
{
    return fwrite(data, 1, len, f) == len ? 0 : -1;
}

static int write_frame(FILE *f, uint8_t type, uint32_t seq, const uint8_t *payload, size_t len)
{
    static uint8_t frame[ELP_HEADER_SIZE + 256 + ELP_TRAILER_SIZE];
    size_t n = elp_encode_frame(frame, sizeof frame, type, seq, payload, len);
    return n == 0 ? -1 : write_all(f, frame, n);
}

/* Deterministic pattern covering both int16 extremes: v = (c*7919 + i*104729) mod 2^16 - 2^15 */
static int16_t echo_sample(uint32_t c, uint32_t i)
{
    return (int16_t)((long)((c * 7919ul + i * 104729ul) % 65536ul) - 32768l);
}

/* Sent the way the firmware sends from its DMA buffer: header, then pieces, then trailer. */
static int write_echo(FILE *f, uint32_t seq, uint32_t device_seq, uint64_t acq_ticks,
                      uint16_t n_channels, uint32_t n_samples)
{
    elp_writer w;
    elp_echo_header eh;
    uint8_t header[ELP_HEADER_SIZE], echo_header[ELP_ECHO_HEADER_SIZE];
    uint8_t trailer[ELP_TRAILER_SIZE], sample[2];
    uint32_t c, i, payload_len = elp_echo_payload_len(n_channels, n_samples);

    eh.acq_ticks = acq_ticks;
    eh.device_seq = device_seq;
    eh.fs_hz = 250000u;
    eh.n_channels = n_channels;
    eh.n_samples = n_samples;
    elp_put_echo_header(echo_header, &eh);
    if (payload_len == 0 ||
        elp_writer_begin(&w, header, ELP_ECHO_FRAME, seq, payload_len) != 0) {
        return -1;
    }
    elp_writer_update(&w, echo_header, sizeof echo_header);
    if (write_all(f, header, sizeof header) || write_all(f, echo_header, sizeof echo_header)) {
        return -1;
    }
    for (c = 0; c < n_channels; c++) {
        for (i = 0; i < n_samples; i++) {
            elp_put_u16(sample, (uint16_t)echo_sample(c, i));
            elp_writer_update(&w, sample, sizeof sample);
            if (write_all(f, sample, sizeof sample)) {
                return -1;
            }
        }
    }
    if (elp_writer_end(&w, trailer) != 0) {
        return -1;
    }
    return write_all(f, trailer, sizeof trailer);
}

static int write_frames(FILE *f)
{
    uint8_t payload[256];
    size_t n;
    elp_info info;
    elp_status status;
    int rc = 0;

    n = elp_put_token(payload, 0xDEADBEEFul);
    rc |= write_frame(f, ELP_PONG, 0, payload, n);

    info.firmware_version = "echoloc-fw 1.0.0";
    info.array_id = "square_4sensor-001";
    info.fs_hz = 250000u;
    info.n_channels = 4;
    info.protocol_version = ELP_PROTOCOL_VERSION;
    info.tick_rate_hz = 600000000ul;
    info.max_window_samples = 16384u;
    n = elp_put_info(payload, sizeof payload, &info);
    rc |= n == 0 ? -1 : write_frame(f, ELP_INFO, 1, payload, n);

    n = elp_put_ack(payload, 7, ELP_CONFIGURE);
    rc |= write_frame(f, ELP_ACK, 2, payload, n);

    n = elp_put_nack(payload, 8, ELP_CONFIGURE, ELP_ERR_INVALID_PARAM);
    rc |= write_frame(f, ELP_NACK, 3, payload, n);

    status.uptime_ticks = 123456789012ull;
    status.temperature_c = 31.25f;
    status.supply_v = 5.0625f;
    status.clip_count = 17;
    status.overrun_count = 2;
    status.state = ELP_STATE_STREAMING;
    n = elp_put_status(payload, &status);
    rc |= write_frame(f, ELP_STATUS, 4, payload, n);

    rc |= write_echo(f, 5, 42, 0x0123456789ABCDEFull, ECHO_CHANNELS, ECHO_SAMPLES);
    rc |= write_echo(f, 0xFFFFFFFFul, 0xFFFFFFFFul, 0xFFFFFFFFFFFFFFFFull, 1, 0);
    return rc;
}

static const char *type_name(uint8_t type)
{
    switch (type) {
    case ELP_PING: return "PING";
    case ELP_GET_INFO: return "GET_INFO";
    case ELP_CONFIGURE: return "CONFIGURE";
    case ELP_START: return "START";
    case ELP_STOP: return "STOP";
    case ELP_GET_STATUS: return "GET_STATUS";
    default: return "OTHER";
    }
}

static void print_command(void *ctx, const elp_command *cmd)
{
    (void)ctx;
    printf("{\"seq\": %lu, \"type\": %u, \"name\": \"%s\", \"error\": %d",
           (unsigned long)cmd->seq, (unsigned)cmd->type, type_name(cmd->type), (int)cmd->error);
    if (cmd->error == ELP_ERR_NONE && cmd->type == ELP_PING) {
        printf(", \"token\": %lu", (unsigned long)cmd->u.token);
    }
    if (cmd->error == ELP_ERR_NONE && cmd->type == ELP_CONFIGURE) {
        const elp_configure *c = &cmd->u.configure;
        printf(", \"chirp_kind\": %u, \"taper\": %u, \"f0_hz\": %.9g, \"f1_hz\": %.9g, "
               "\"duration_s\": %.9g, \"fs_hz\": %lu, \"window_samples\": %lu, "
               "\"frame_rate_hz\": %.9g",
               (unsigned)c->chirp_kind, (unsigned)c->taper, (double)c->f0_hz,
               (double)c->f1_hz, (double)c->duration_s, (unsigned long)c->fs_hz,
               (unsigned long)c->window_samples, (double)c->frame_rate_hz);
    }
    printf("}\n");
}

static int parse_file(const char *path)
{
    uint8_t chunk[7]; /* an odd size, so frames straddle reads */
    size_t n;
    elp_parser parser;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    elp_parser_init(&parser);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        elp_parser_feed(&parser, chunk, n, print_command, NULL);
    }
    fclose(f);
    printf("{\"stats\": {\"bytes_in\": %lu, \"frames_ok\": %lu, \"header_crc_errors\": %lu, "
           "\"crc_errors\": %lu, \"oversize\": %lu, \"rejected\": %lu, "
           "\"bytes_discarded\": %lu, \"pending\": %lu}}\n",
           (unsigned long)parser.stats.bytes_in, (unsigned long)parser.stats.frames_ok,
           (unsigned long)parser.stats.header_crc_errors, (unsigned long)parser.stats.crc_errors,
           (unsigned long)parser.stats.oversize, (unsigned long)parser.stats.rejected,
           (unsigned long)parser.stats.bytes_discarded, (unsigned long)parser.len);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "frames") == 0) {
        FILE *f = strcmp(argv[2], "-") == 0 ? stdout : fopen(argv[2], "wb");
        int rc;
        if (f == NULL) {
            perror(argv[2]);
            return 1;
        }
        rc = write_frames(f);
        if (f != stdout) {
            rc |= fclose(f);
        } else {
            rc |= fflush(f);
        }
        return rc == 0 ? 0 : 1;
    }
    if (argc == 3 && strcmp(argv[1], "parse") == 0) {
        return parse_file(argv[2]);
    }
    fprintf(stderr, "usage: %s frames OUT | parse IN\n", argv[0]);
    return 2;
}
