/*
 * echoloc serial protocol v1: portable C99 encoder and command parser.
 *
 * Byte layouts are in docs/protocol.md; echoloc_ros/device/protocol.py is the Python twin and
 * test/test_firmware_protocol.py checks the two bit-exactly. No dynamic memory, no stdio:
 * the same file builds for the Teensy 4.1 and for the host test program.
 */
#ifndef ECHOLOC_PROTOCOL_H
#define ECHOLOC_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ELP_PROTOCOL_VERSION 1u
#define ELP_SYNC0 0xECu
#define ELP_SYNC1 0xA5u
#define ELP_SYNC2 0x5Au
#define ELP_SYNC3 0xC3u
#define ELP_HEADER_SIZE 20u
#define ELP_HEADER_CRC_SPAN 16u
#define ELP_TRAILER_SIZE 4u
#define ELP_MAX_PAYLOAD 1048576ul
#define ELP_MAX_STRING 64u
#define ELP_ECHO_HEADER_SIZE 24u
#define ELP_STATUS_SIZE 28u
#define ELP_CONFIGURE_SIZE 28u
#define ELP_INFO_FIXED_SIZE 16u
/* Longest host->device payload the device accepts; CONFIGURE (28 B) is the longest. */
#define ELP_CMD_MAX_PAYLOAD 64u
#define ELP_CMD_MAX_FRAME (ELP_HEADER_SIZE + ELP_CMD_MAX_PAYLOAD + ELP_TRAILER_SIZE)

typedef enum {
    ELP_PING = 0x01,
    ELP_GET_INFO = 0x02,
    ELP_CONFIGURE = 0x03,
    ELP_START = 0x04,
    ELP_STOP = 0x05,
    ELP_GET_STATUS = 0x06,
    ELP_PONG = 0x81,
    ELP_INFO = 0x82,
    ELP_ACK = 0x83,
    ELP_NACK = 0x84,
    ELP_STATUS = 0x85,
    ELP_ECHO_FRAME = 0x86
} elp_msg_type;

typedef enum {
    ELP_ERR_NONE = 0,
    ELP_ERR_UNKNOWN_TYPE = 1,
    ELP_ERR_BAD_LENGTH = 2,
    ELP_ERR_BAD_VERSION = 3,
    ELP_ERR_BAD_CRC = 4,
    ELP_ERR_INVALID_PARAM = 5,
    ELP_ERR_BUSY = 6,
    ELP_ERR_INTERNAL = 7
} elp_error;

typedef enum {
    ELP_CHIRP_LFM = 0,    /* linear FM */
    ELP_CHIRP_HFM = 1,    /* hyperbolic FM */
    ELP_CHIRP_BARKER = 2  /* 13-chip Barker BPSK on a carrier at (f0 + f1) / 2 */
} elp_chirp_kind;
typedef enum { ELP_TAPER_RECT = 0, ELP_TAPER_HANN = 1 } elp_taper;
typedef enum { ELP_STATE_IDLE = 0, ELP_STATE_STREAMING = 1 } elp_state;

typedef struct {
    uint8_t chirp_kind;
    uint8_t taper;
    float f0_hz;
    float f1_hz;
    float duration_s;
    uint32_t fs_hz;
    uint32_t window_samples;
    float frame_rate_hz;
} elp_configure;

typedef struct {
    const char *firmware_version; /* UTF-8, at most ELP_MAX_STRING bytes */
    const char *array_id;         /* UTF-8, at most ELP_MAX_STRING bytes */
    uint32_t fs_hz;
    uint8_t n_channels;
    uint8_t protocol_version;
    uint32_t tick_rate_hz;
    uint32_t max_window_samples;
} elp_info;

typedef struct {
    uint64_t uptime_ticks;
    float temperature_c;
    float supply_v;
    uint32_t clip_count;
    uint32_t overrun_count;
    uint8_t state;
} elp_status;

typedef struct {
    uint64_t acq_ticks;
    uint32_t device_seq;
    uint32_t fs_hz;
    uint16_t n_channels;
    uint32_t n_samples;
} elp_echo_header;

/* CRC-32 (IEEE 802.3, reflected, as zlib.crc32): start with crc = 0, chain calls. */
uint32_t elp_crc32(uint32_t crc, const void *data, size_t len);

/* Little-endian field writers/readers. */
void elp_put_u16(uint8_t *p, uint16_t v);
void elp_put_u32(uint8_t *p, uint32_t v);
void elp_put_u64(uint8_t *p, uint64_t v);
void elp_put_f32(uint8_t *p, float v);
uint16_t elp_get_u16(const uint8_t *p);
uint32_t elp_get_u32(const uint8_t *p);
float elp_get_f32(const uint8_t *p);

/*
 * Streaming frame writer, for payloads that should not be copied (an 80 KB echo frame is
 * sent straight from the DMA buffer): begin() fills the header, update() is called on every
 * payload piece in order, end() fills the trailer once exactly payload_len bytes were seen.
 * Returns 0 on success, -1 if payload_len is too long or the byte count does not match.
 */
typedef struct {
    uint32_t crc;
    uint32_t remaining;
} elp_writer;

int elp_writer_begin(elp_writer *w, uint8_t header[ELP_HEADER_SIZE], uint8_t type,
                     uint32_t seq, uint32_t payload_len);
void elp_writer_update(elp_writer *w, const void *data, size_t len);
int elp_writer_end(elp_writer *w, uint8_t trailer[ELP_TRAILER_SIZE]);

/* Whole frame into out[cap]; returns the frame length, or 0 if it does not fit. */
size_t elp_encode_frame(uint8_t *out, size_t cap, uint8_t type, uint32_t seq,
                        const uint8_t *payload, size_t payload_len);

/* Payload builders: write into out, return the payload length (0 = invalid input). */
size_t elp_put_token(uint8_t out[4], uint32_t token); /* PING and PONG */
size_t elp_put_configure(uint8_t out[ELP_CONFIGURE_SIZE], const elp_configure *c);
size_t elp_put_info(uint8_t *out, size_t cap, const elp_info *info);
size_t elp_put_ack(uint8_t out[5], uint32_t command_seq, uint8_t command_type);
size_t elp_put_nack(uint8_t out[6], uint32_t command_seq, uint8_t command_type, uint8_t error);
size_t elp_put_status(uint8_t out[ELP_STATUS_SIZE], const elp_status *s);
size_t elp_put_echo_header(uint8_t out[ELP_ECHO_HEADER_SIZE], const elp_echo_header *h);
/* ECHO_FRAME payload length, or 0 if it would exceed ELP_MAX_PAYLOAD. */
uint32_t elp_echo_payload_len(uint16_t n_channels, uint32_t n_samples);

/* A host->device command as parsed. error != ELP_ERR_NONE: header intact (seq and type are
 * trustworthy) but the command is unusable; the device answers NACK(seq, type, error). */
typedef struct {
    uint8_t type;
    uint32_t seq;
    elp_error error;
    union {
        uint32_t token;
        elp_configure configure;
    } u;
} elp_command;

typedef void (*elp_command_fn)(void *ctx, const elp_command *cmd);

typedef struct {
    uint32_t bytes_in;
    uint32_t frames_ok;
    uint32_t header_crc_errors;
    uint32_t crc_errors;
    uint32_t oversize;
    uint32_t rejected; /* intact frames delivered with an error code */
    uint32_t bytes_discarded;
} elp_parser_stats;

/*
 * Command parser. It keeps a sliding window of at most one command frame and moves through
 * the states HUNT (window is not a sync prefix: drop a byte), HEADER (wait for 20 bytes,
 * check the header CRC), PAYLOAD (wait for the declared length), CHECK (frame CRC). Any
 * failure drops a single byte and hunts again from the next one, so a frame that starts
 * inside a damaged one is still found.
 */
typedef struct {
    uint8_t buf[ELP_CMD_MAX_FRAME];
    size_t len;
    elp_parser_stats stats;
} elp_parser;

void elp_parser_init(elp_parser *p);
void elp_parser_feed(elp_parser *p, const uint8_t *data, size_t len, elp_command_fn fn,
                     void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* ECHOLOC_PROTOCOL_H */
