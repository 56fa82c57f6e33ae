/* echoloc serial protocol v1, see echoloc_protocol.h and docs/protocol.md. */
#include "echoloc_protocol.h"

#include <string.h>

/* Floats travel as their IEEE-754 binary32 bit pattern. */
typedef char elp_float_is_32_bit[(sizeof(float) == 4) ? 1 : -1];

static const uint8_t elp_sync[4] = {ELP_SYNC0, ELP_SYNC1, ELP_SYNC2, ELP_SYNC3};

/* Reflected polynomial 0xEDB88320; a 1 KiB table in flash costs less than a slow CRC. */
static const uint32_t elp_crc_table[256] = {
    0x00000000UL, 0x77073096UL, 0xee0e612cUL, 0x990951baUL, 0x076dc419UL, 0x706af48fUL,
    0xe963a535UL, 0x9e6495a3UL, 0x0edb8832UL, 0x79dcb8a4UL, 0xe0d5e91eUL, 0x97d2d988UL,
    0x09b64c2bUL, 0x7eb17cbdUL, 0xe7b82d07UL, 0x90bf1d91UL, 0x1db71064UL, 0x6ab020f2UL,
    0xf3b97148UL, 0x84be41deUL, 0x1adad47dUL, 0x6ddde4ebUL, 0xf4d4b551UL, 0x83d385c7UL,
    0x136c9856UL, 0x646ba8c0UL, 0xfd62f97aUL, 0x8a65c9ecUL, 0x14015c4fUL, 0x63066cd9UL,
    0xfa0f3d63UL, 0x8d080df5UL, 0x3b6e20c8UL, 0x4c69105eUL, 0xd56041e4UL, 0xa2677172UL,
    0x3c03e4d1UL, 0x4b04d447UL, 0xd20d85fdUL, 0xa50ab56bUL, 0x35b5a8faUL, 0x42b2986cUL,
    0xdbbbc9d6UL, 0xacbcf940UL, 0x32d86ce3UL, 0x45df5c75UL, 0xdcd60dcfUL, 0xabd13d59UL,
    0x26d930acUL, 0x51de003aUL, 0xc8d75180UL, 0xbfd06116UL, 0x21b4f4b5UL, 0x56b3c423UL,
    0xcfba9599UL, 0xb8bda50fUL, 0x2802b89eUL, 0x5f058808UL, 0xc60cd9b2UL, 0xb10be924UL,
    0x2f6f7c87UL, 0x58684c11UL, 0xc1611dabUL, 0xb6662d3dUL, 0x76dc4190UL, 0x01db7106UL,
    0x98d220bcUL, 0xefd5102aUL, 0x71b18589UL, 0x06b6b51fUL, 0x9fbfe4a5UL, 0xe8b8d433UL,
    0x7807c9a2UL, 0x0f00f934UL, 0x9609a88eUL, 0xe10e9818UL, 0x7f6a0dbbUL, 0x086d3d2dUL,
    0x91646c97UL, 0xe6635c01UL, 0x6b6b51f4UL, 0x1c6c6162UL, 0x856530d8UL, 0xf262004eUL,
    0x6c0695edUL, 0x1b01a57bUL, 0x8208f4c1UL, 0xf50fc457UL, 0x65b0d9c6UL, 0x12b7e950UL,
    0x8bbeb8eaUL, 0xfcb9887cUL, 0x62dd1ddfUL, 0x15da2d49UL, 0x8cd37cf3UL, 0xfbd44c65UL,
    0x4db26158UL, 0x3ab551ceUL, 0xa3bc0074UL, 0xd4bb30e2UL, 0x4adfa541UL, 0x3dd895d7UL,
    0xa4d1c46dUL, 0xd3d6f4fbUL, 0x4369e96aUL, 0x346ed9fcUL, 0xad678846UL, 0xda60b8d0UL,
    0x44042d73UL, 0x33031de5UL, 0xaa0a4c5fUL, 0xdd0d7cc9UL, 0x5005713cUL, 0x270241aaUL,
    0xbe0b1010UL, 0xc90c2086UL, 0x5768b525UL, 0x206f85b3UL, 0xb966d409UL, 0xce61e49fUL,
    0x5edef90eUL, 0x29d9c998UL, 0xb0d09822UL, 0xc7d7a8b4UL, 0x59b33d17UL, 0x2eb40d81UL,
    0xb7bd5c3bUL, 0xc0ba6cadUL, 0xedb88320UL, 0x9abfb3b6UL, 0x03b6e20cUL, 0x74b1d29aUL,
    0xead54739UL, 0x9dd277afUL, 0x04db2615UL, 0x73dc1683UL, 0xe3630b12UL, 0x94643b84UL,
    0x0d6d6a3eUL, 0x7a6a5aa8UL, 0xe40ecf0bUL, 0x9309ff9dUL, 0x0a00ae27UL, 0x7d079eb1UL,
    0xf00f9344UL, 0x8708a3d2UL, 0x1e01f268UL, 0x6906c2feUL, 0xf762575dUL, 0x806567cbUL,
    0x196c3671UL, 0x6e6b06e7UL, 0xfed41b76UL, 0x89d32be0UL, 0x10da7a5aUL, 0x67dd4accUL,
    0xf9b9df6fUL, 0x8ebeeff9UL, 0x17b7be43UL, 0x60b08ed5UL, 0xd6d6a3e8UL, 0xa1d1937eUL,
    0x38d8c2c4UL, 0x4fdff252UL, 0xd1bb67f1UL, 0xa6bc5767UL, 0x3fb506ddUL, 0x48b2364bUL,
    0xd80d2bdaUL, 0xaf0a1b4cUL, 0x36034af6UL, 0x41047a60UL, 0xdf60efc3UL, 0xa867df55UL,
    0x316e8eefUL, 0x4669be79UL, 0xcb61b38cUL, 0xbc66831aUL, 0x256fd2a0UL, 0x5268e236UL,
    0xcc0c7795UL, 0xbb0b4703UL, 0x220216b9UL, 0x5505262fUL, 0xc5ba3bbeUL, 0xb2bd0b28UL,
    0x2bb45a92UL, 0x5cb36a04UL, 0xc2d7ffa7UL, 0xb5d0cf31UL, 0x2cd99e8bUL, 0x5bdeae1dUL,
    0x9b64c2b0UL, 0xec63f226UL, 0x756aa39cUL, 0x026d930aUL, 0x9c0906a9UL, 0xeb0e363fUL,
    0x72076785UL, 0x05005713UL, 0x95bf4a82UL, 0xe2b87a14UL, 0x7bb12baeUL, 0x0cb61b38UL,
    0x92d28e9bUL, 0xe5d5be0dUL, 0x7cdcefb7UL, 0x0bdbdf21UL, 0x86d3d2d4UL, 0xf1d4e242UL,
    0x68ddb3f8UL, 0x1fda836eUL, 0x81be16cdUL, 0xf6b9265bUL, 0x6fb077e1UL, 0x18b74777UL,
    0x88085ae6UL, 0xff0f6a70UL, 0x66063bcaUL, 0x11010b5cUL, 0x8f659effUL, 0xf862ae69UL,
    0x616bffd3UL, 0x166ccf45UL, 0xa00ae278UL, 0xd70dd2eeUL, 0x4e048354UL, 0x3903b3c2UL,
    0xa7672661UL, 0xd06016f7UL, 0x4969474dUL, 0x3e6e77dbUL, 0xaed16a4aUL, 0xd9d65adcUL,
    0x40df0b66UL, 0x37d83bf0UL, 0xa9bcae53UL, 0xdebb9ec5UL, 0x47b2cf7fUL, 0x30b5ffe9UL,
    0xbdbdf21cUL, 0xcabac28aUL, 0x53b39330UL, 0x24b4a3a6UL, 0xbad03605UL, 0xcdd70693UL,
    0x54de5729UL, 0x23d967bfUL, 0xb3667a2eUL, 0xc4614ab8UL, 0x5d681b02UL, 0x2a6f2b94UL,
    0xb40bbe37UL, 0xc30c8ea1UL, 0x5a05df1bUL, 0x2d02ef8dUL,
};

uint32_t elp_crc32(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = (const uint8_t *)data;
    crc = ~crc;
    while (len--) {
        crc = elp_crc_table[(crc ^ *p++) & 0xFFu] ^ (crc >> 8);
    }
    return ~crc;
}

void elp_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void elp_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

void elp_put_u64(uint8_t *p, uint64_t v)
{
    elp_put_u32(p, (uint32_t)v);
    elp_put_u32(p + 4, (uint32_t)(v >> 32));
}

void elp_put_f32(uint8_t *p, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    elp_put_u32(p, bits);
}

uint16_t elp_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

uint32_t elp_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

float elp_get_f32(const uint8_t *p)
{
    uint32_t bits = elp_get_u32(p);
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

int elp_writer_begin(elp_writer *w, uint8_t header[ELP_HEADER_SIZE], uint8_t type,
                     uint32_t seq, uint32_t payload_len)
{
    if (payload_len > ELP_MAX_PAYLOAD) {
        return -1;
    }
    memcpy(header, elp_sync, sizeof elp_sync);
    header[4] = (uint8_t)ELP_PROTOCOL_VERSION;
    header[5] = type;
    elp_put_u16(header + 6, 0);
    elp_put_u32(header + 8, seq);
    elp_put_u32(header + 12, payload_len);
    elp_put_u32(header + 16, elp_crc32(0, header, ELP_HEADER_CRC_SPAN));
    w->crc = elp_crc32(0, header, ELP_HEADER_SIZE);
    w->remaining = payload_len;
    return 0;
}

void elp_writer_update(elp_writer *w, const void *data, size_t len)
{
    w->crc = elp_crc32(w->crc, data, len);
    w->remaining -= (uint32_t)len;
}

int elp_writer_end(elp_writer *w, uint8_t trailer[ELP_TRAILER_SIZE])
{
    elp_put_u32(trailer, w->crc);
    return w->remaining == 0 ? 0 : -1;
}

size_t elp_encode_frame(uint8_t *out, size_t cap, uint8_t type, uint32_t seq,
                        const uint8_t *payload, size_t payload_len)
{
    elp_writer w;
    size_t total;
    if (payload_len > ELP_MAX_PAYLOAD) {
        return 0;
    }
    total = ELP_HEADER_SIZE + payload_len + ELP_TRAILER_SIZE;
    if (total > cap || elp_writer_begin(&w, out, type, seq, (uint32_t)payload_len) != 0) {
        return 0;
    }
    if (payload_len) {
        memmove(out + ELP_HEADER_SIZE, payload, payload_len);
        elp_writer_update(&w, out + ELP_HEADER_SIZE, payload_len);
    }
    return elp_writer_end(&w, out + ELP_HEADER_SIZE + payload_len) == 0 ? total : 0;
}

size_t elp_put_token(uint8_t out[4], uint32_t token)
{
    elp_put_u32(out, token);
    return 4;
}

size_t elp_put_configure(uint8_t out[ELP_CONFIGURE_SIZE], const elp_configure *c)
{
    out[0] = c->chirp_kind;
    out[1] = c->taper;
    elp_put_u16(out + 2, 0);
    elp_put_f32(out + 4, c->f0_hz);
    elp_put_f32(out + 8, c->f1_hz);
    elp_put_f32(out + 12, c->duration_s);
    elp_put_u32(out + 16, c->fs_hz);
    elp_put_u32(out + 20, c->window_samples);
    elp_put_f32(out + 24, c->frame_rate_hz);
    return ELP_CONFIGURE_SIZE;
}

static size_t elp_put_string(uint8_t *out, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n > ELP_MAX_STRING || n + 1 > cap) {
        return 0;
    }
    out[0] = (uint8_t)n;
    memcpy(out + 1, s, n);
    return n + 1;
}

size_t elp_put_info(uint8_t *out, size_t cap, const elp_info *info)
{
    size_t a, b;
    if (cap < ELP_INFO_FIXED_SIZE) {
        return 0;
    }
    out[0] = info->protocol_version;
    out[1] = info->n_channels;
    elp_put_u16(out + 2, 0);
    elp_put_u32(out + 4, info->fs_hz);
    elp_put_u32(out + 8, info->tick_rate_hz);
    elp_put_u32(out + 12, info->max_window_samples);
    a = elp_put_string(out + ELP_INFO_FIXED_SIZE, cap - ELP_INFO_FIXED_SIZE,
                       info->firmware_version);
    if (a == 0) {
        return 0;
    }
    b = elp_put_string(out + ELP_INFO_FIXED_SIZE + a, cap - ELP_INFO_FIXED_SIZE - a,
                       info->array_id);
    return b == 0 ? 0 : ELP_INFO_FIXED_SIZE + a + b;
}

size_t elp_put_ack(uint8_t out[5], uint32_t command_seq, uint8_t command_type)
{
    elp_put_u32(out, command_seq);
    out[4] = command_type;
    return 5;
}

size_t elp_put_nack(uint8_t out[6], uint32_t command_seq, uint8_t command_type, uint8_t error)
{
    elp_put_u32(out, command_seq);
    out[4] = command_type;
    out[5] = error;
    return 6;
}

size_t elp_put_status(uint8_t out[ELP_STATUS_SIZE], const elp_status *s)
{
    elp_put_u64(out, s->uptime_ticks);
    elp_put_f32(out + 8, s->temperature_c);
    elp_put_f32(out + 12, s->supply_v);
    elp_put_u32(out + 16, s->clip_count);
    elp_put_u32(out + 20, s->overrun_count);
    out[24] = s->state;
    out[25] = 0;
    out[26] = 0;
    out[27] = 0;
    return ELP_STATUS_SIZE;
}

size_t elp_put_echo_header(uint8_t out[ELP_ECHO_HEADER_SIZE], const elp_echo_header *h)
{
    elp_put_u64(out, h->acq_ticks);
    elp_put_u32(out + 8, h->device_seq);
    elp_put_u32(out + 12, h->fs_hz);
    elp_put_u16(out + 16, h->n_channels);
    elp_put_u16(out + 18, 0);
    elp_put_u32(out + 20, h->n_samples);
    return ELP_ECHO_HEADER_SIZE;
}

uint32_t elp_echo_payload_len(uint16_t n_channels, uint32_t n_samples)
{
    uint64_t n = (uint64_t)ELP_ECHO_HEADER_SIZE + 2u * (uint64_t)n_channels * n_samples;
    return n > ELP_MAX_PAYLOAD ? 0u : (uint32_t)n;
}

void elp_parser_init(elp_parser *p)
{
    memset(p, 0, sizeof *p);
}

static void elp_parser_drop(elp_parser *p, size_t n)
{
    memmove(p->buf, p->buf + n, p->len - n);
    p->len -= n;
}

static elp_error elp_decode_command(elp_command *cmd, const uint8_t *payload, uint32_t len)
{
    switch (cmd->type) {
    case ELP_PING:
        if (len != 4) {
            return ELP_ERR_BAD_LENGTH;
        }
        cmd->u.token = elp_get_u32(payload);
        return ELP_ERR_NONE;
    case ELP_GET_INFO:
    case ELP_START:
    case ELP_STOP:
    case ELP_GET_STATUS:
        return len == 0 ? ELP_ERR_NONE : ELP_ERR_BAD_LENGTH;
    case ELP_CONFIGURE:
        if (len != ELP_CONFIGURE_SIZE) {
            return ELP_ERR_BAD_LENGTH;
        }
        cmd->u.configure.chirp_kind = payload[0];
        cmd->u.configure.taper = payload[1];
        cmd->u.configure.f0_hz = elp_get_f32(payload + 4);
        cmd->u.configure.f1_hz = elp_get_f32(payload + 8);
        cmd->u.configure.duration_s = elp_get_f32(payload + 12);
        cmd->u.configure.fs_hz = elp_get_u32(payload + 16);
        cmd->u.configure.window_samples = elp_get_u32(payload + 20);
        cmd->u.configure.frame_rate_hz = elp_get_f32(payload + 24);
        if (payload[0] > ELP_CHIRP_BARKER || payload[1] > ELP_TAPER_HANN) {
            return ELP_ERR_INVALID_PARAM;
        }
        return ELP_ERR_NONE;
    default:
        return ELP_ERR_UNKNOWN_TYPE;
    }
}

/* One pass of the state machine over the window; returns 1 if it should run again. */
static int elp_parser_step(elp_parser *p, elp_command_fn fn, void *ctx)
{
    elp_command cmd;
    uint32_t payload_len;
    size_t total;
    size_t m = p->len < 4 ? p->len : 4;

    if (m == 0) {
        return 0;
    }
    if (memcmp(p->buf, elp_sync, m) != 0) { /* HUNT */
        p->stats.bytes_discarded++;
        elp_parser_drop(p, 1);
        return 1;
    }
    if (p->len < ELP_HEADER_SIZE) { /* HEADER: wait */
        return 0;
    }
    if (elp_crc32(0, p->buf, ELP_HEADER_CRC_SPAN) != elp_get_u32(p->buf + 16)) {
        p->stats.header_crc_errors++;
        p->stats.bytes_discarded++;
        elp_parser_drop(p, 1);
        return 1;
    }
    payload_len = elp_get_u32(p->buf + 12);
    if (payload_len > ELP_CMD_MAX_PAYLOAD) {
        p->stats.oversize++;
        p->stats.bytes_discarded++;
        elp_parser_drop(p, 1);
        return 1;
    }
    total = ELP_HEADER_SIZE + payload_len + ELP_TRAILER_SIZE;
    if (p->len < total) { /* PAYLOAD: wait */
        return 0;
    }
    memset(&cmd, 0, sizeof cmd);
    cmd.type = p->buf[5];
    cmd.seq = elp_get_u32(p->buf + 8);
    if (elp_crc32(0, p->buf, ELP_HEADER_SIZE + payload_len) !=
        elp_get_u32(p->buf + ELP_HEADER_SIZE + payload_len)) { /* CHECK */
        p->stats.crc_errors++;
        p->stats.bytes_discarded++;
        cmd.error = ELP_ERR_BAD_CRC;
        fn(ctx, &cmd);
        elp_parser_drop(p, 1);
        return 1;
    }
    if (p->buf[4] != ELP_PROTOCOL_VERSION) {
        cmd.error = ELP_ERR_BAD_VERSION;
    } else {
        cmd.error = elp_decode_command(&cmd, p->buf + ELP_HEADER_SIZE, payload_len);
    }
    if (cmd.error == ELP_ERR_NONE) {
        p->stats.frames_ok++;
    } else {
        p->stats.rejected++;
        p->stats.bytes_discarded += (uint32_t)total;
    }
    fn(ctx, &cmd);
    elp_parser_drop(p, total);
    return 1;
}

void elp_parser_feed(elp_parser *p, const uint8_t *data, size_t len, elp_command_fn fn,
                     void *ctx)
{
    size_t i;
    for (i = 0; i < len; i++) {
        /* The window never fills: after each step it is shorter than one whole frame. */
        p->buf[p->len++] = data[i];
        p->stats.bytes_in++;
        while (elp_parser_step(p, fn, ctx)) {
        }
    }
}
