/*
 * echoloc_array: firmware of the echoloc ultrasonic array on a Teensy 4.1 (IMXRT1062).
 *
 * One 40 kHz emitter, four receivers, protocol v1 over USB high-speed serial
 * (docs/protocol.md). Build: `make -C firmware sketch-src`, then Arduino IDE + Teensyduino
 * or PlatformIO (docs/hardware.md).
 *
 * STATUS: written against the IMXRT1060 reference manual (rev. 3: ADC ch. 66, ADC_ETC ch. 67,
 * XBAR ch. 61, eDMA ch. 6, FlexPWM ch. 55) and Teensyduino's imxrt.h, but NOT compiled or run
 * here. The protocol code it uses (echoloc_protocol.c) is compiled and tested on the host.
 * Bring-up checklist in docs/hardware.md.
 *
 * Acquisition
 *   PIT channel 0 ticks at fs (24 MHz / fs) -> XBAR -> ADC_ETC TRIG0 and TRIG4, at once.
 *   TRIG0 chains two back-to-back conversions on ADC1 (A0, A1), TRIG4 two on ADC2 (A2, A3).
 *   One eDMA channel, requested when TRIG4's chain is done, copies TRIG0.RESULT_1_0 and
 *   TRIG4.RESULT_1_0 (8 bytes = 4 x 12-bit results) into a ring of 2 x 1024 samples; its
 *   half and full interrupts hand each finished half to dma_isr (ping-pong). ADC2 samples a
 *   little longer than ADC1 so TRIG4 always finishes last and the DMA never reads a stale
 *   TRIG0 result.
 *   Channel skew: within a pair the second conversion follows the first by one conversion
 *   time (~0.7 us, 10 degrees of phase at 40 kHz), and ADC2 lags ADC1 by its longer sample
 *   time. The skew is fixed, so the host calibrates it out; a simultaneous-sampling ADC
 *   (docs/hardware.md) removes it.
 *
 * Emission
 *   The chirp is a square wave on pin 2 (FlexPWM4 submodule 2, output A) into a TC4428
 *   bridge driver: the transducer's resonance (Q ~ 20) keeps the fundamental. Frequency is
 *   set per cycle by VAL1 (period) and amplitude by the duty cycle (fundamental ~ sin(pi d)),
 *   which gives the Hann taper. The reload interrupt loads the next cycle (80 interrupts for
 *   a 2 ms chirp). The first chirp cycle starts at the PWM's next reload; reading the PWM
 *   counter gives that instant exactly, and the frame starts at the first sample after it,
 *   so the chirp leads the first sample by less than one sample period (4 us, 1.4 mm).
 *   Starting FlexPWM from the PIT through XBAR would lock the two clocks and remove that.
 *
 * Time
 *   Ticks are the Cortex-M7 cycle counter (F_CPU_ACTUAL Hz, 600 MHz by default) extended to
 *   64 bits; it wraps every 7.2 s, so ticks64() must run more often than that (loop() does).
 */
#include <Arduino.h>
#include <DMAChannel.h>

#include "src/echoloc_protocol.h"

static const char FIRMWARE_VERSION[] = "echoloc-fw 1.0.0";
static const char ARRAY_ID[] = "square_4sensor-001";
static const uint8_t N_CHANNELS = 4;
static const uint32_t MAX_WINDOW_SAMPLES = 16384;   // 2 frames x 4 ch x 16384 x 2 B = 256 KiB
static const uint32_t HALF_SAMPLES = 1024;          // ping-pong half: 4.1 ms at 250 kHz
static const uint32_t PIT_CLOCK_HZ = 24000000;      // PERCLK as Teensyduino sets it (24 MHz)
static const uint32_t MAX_FS_HZ = 250000;           // two 12-bit conversions per ADC per sample
static const uint32_t STATUS_PERIOD_MS = 1000;
static const int PIN_TX = 2;                        // FlexPWM4.2 A -> TC4428 inputs
static const int PIN_VIN_SENSE = 23;                // A9: VIN through a 10k/3.3k divider
static const float VIN_DIVIDER = (10.0f + 3.3f) / 3.3f;
static const uint8_t ADC_PINS[N_CHANNELS] = {A0, A1, A2, A3};
// ADC input numbers of A0..A3 (pads AD_B1_02, AD_B1_03, AD_B1_07, AD_B1_06).
static const uint8_t ADC1_INPUTS[2] = {7, 8};
static const uint8_t ADC2_INPUTS[2] = {12, 11};

// DMA ring: per sample, 4 x uint16 in channel order (TRIG0 result 0/1, TRIG4 result 0/1).
DMAMEM static uint16_t ring[2 * HALF_SAMPLES * N_CHANNELS] __attribute__((aligned(32)));
// Two frame buffers, channel-major int16: one fills while the other is sent.
DMAMEM static int16_t frames[2][N_CHANNELS * MAX_WINDOW_SAMPLES] __attribute__((aligned(32)));

struct Frame {
    volatile bool ready;       // filled, waiting for loop() to send it
    volatile bool filling;     // dma_isr is writing it
    uint64_t start_sample;     // absolute index of the first sample
    uint64_t acq_ticks;
    uint32_t device_seq;
    uint32_t n_samples;
};

static DMAChannel dma;
static elp_parser parser;
static elp_configure config;
static Frame frame_state[2];
static volatile uint64_t halves_done;
static volatile uint32_t clip_count;
static volatile uint32_t overrun_count;
static uint32_t device_seq;
static uint32_t tx_seq;
static bool streaming;
static uint32_t next_frame_us;
static uint32_t last_status_ms;
static float supply_v;

// Chirp: per-cycle PWM period and on-time in FlexPWM counts, filled by build_chirp().
static const uint32_t MAX_CHIRP_CYCLES = 512;
static uint16_t chirp_period[MAX_CHIRP_CYCLES];
static uint16_t chirp_on[MAX_CHIRP_CYCLES];
static uint32_t chirp_cycles;
static volatile uint32_t chirp_index;

static uint64_t ticks64()
{
    static uint32_t last;
    static uint64_t high;
    __disable_irq();
    uint32_t now = ARM_DWT_CYCCNT;
    if (now < last) {
        high += 1ull << 32;
    }
    last = now;
    uint64_t t = high | now;
    __enable_irq();
    return t;
}

/* ------------------------------------------------------------------ protocol output */

static void send_frame(uint8_t type, const uint8_t *payload, size_t len)
{
    uint8_t buf[ELP_HEADER_SIZE + ELP_INFO_FIXED_SIZE + 2 + 2 * ELP_MAX_STRING + ELP_TRAILER_SIZE];
    size_t n = elp_encode_frame(buf, sizeof buf, type, tx_seq++, payload, len);
    if (n) {
        Serial.write(buf, n);
    }
}

static void send_ack(const elp_command *cmd)
{
    uint8_t p[5];
    send_frame(ELP_ACK, p, elp_put_ack(p, cmd->seq, cmd->type));
}

static void send_nack(const elp_command *cmd, elp_error err)
{
    uint8_t p[6];
    send_frame(ELP_NACK, p, elp_put_nack(p, cmd->seq, cmd->type, (uint8_t)err));
}

static void send_info()
{
    elp_info info;
    info.firmware_version = FIRMWARE_VERSION;
    info.array_id = ARRAY_ID;
    info.fs_hz = config.fs_hz;
    info.n_channels = N_CHANNELS;
    info.protocol_version = ELP_PROTOCOL_VERSION;
    info.tick_rate_hz = F_CPU_ACTUAL;
    info.max_window_samples = MAX_WINDOW_SAMPLES;
    uint8_t p[ELP_INFO_FIXED_SIZE + 2 + 2 * ELP_MAX_STRING];
    send_frame(ELP_INFO, p, elp_put_info(p, sizeof p, &info));
}

static void send_status()
{
    elp_status s;
    s.uptime_ticks = ticks64();
    s.temperature_c = tempmonGetTemp();
    s.supply_v = supply_v;
    s.clip_count = clip_count;
    s.overrun_count = overrun_count;
    s.state = streaming ? ELP_STATE_STREAMING : ELP_STATE_IDLE;
    uint8_t p[ELP_STATUS_SIZE];
    send_frame(ELP_STATUS, p, elp_put_status(p, &s));
}

// Streams one frame straight from its buffer; the CRC runs over the bytes as they go out.
static void send_echo(Frame &f, const int16_t *samples)
{
    elp_echo_header eh;
    eh.acq_ticks = f.acq_ticks;
    eh.device_seq = f.device_seq;
    eh.fs_hz = config.fs_hz;
    eh.n_channels = N_CHANNELS;
    eh.n_samples = f.n_samples;
    uint8_t header[ELP_HEADER_SIZE], echo_header[ELP_ECHO_HEADER_SIZE], trailer[ELP_TRAILER_SIZE];
    elp_put_echo_header(echo_header, &eh);
    elp_writer w;
    elp_writer_begin(&w, header, ELP_ECHO_FRAME, tx_seq++,
                     elp_echo_payload_len(N_CHANNELS, f.n_samples));
    elp_writer_update(&w, echo_header, sizeof echo_header);
    Serial.write(header, sizeof header);
    Serial.write(echo_header, sizeof echo_header);
    // Cortex-M7 is little-endian: the int16 buffer already has the wire byte order.
    for (uint32_t c = 0; c < N_CHANNELS; c++) {
        const uint8_t *bytes = (const uint8_t *)(samples + c * MAX_WINDOW_SAMPLES);
        elp_writer_update(&w, bytes, 2 * f.n_samples);
        Serial.write(bytes, 2 * f.n_samples);
    }
    elp_writer_end(&w, trailer);
    Serial.write(trailer, sizeof trailer);
}

/* ------------------------------------------------------------------ acquisition */

static void xbar_connect(uint32_t input, uint32_t output)
{
    volatile uint16_t *xbar = &XBARA1_SEL0 + (output / 2);
    uint16_t val = *xbar;
    val = (output & 1) ? (uint16_t)((val & 0x00FF) | (input << 8))
                       : (uint16_t)((val & 0xFF00) | input);
    *xbar = val;
}

static void adc_setup(IMXRT_ADCS_t &adc, uint32_t sample_time)
{
    // 12 bit, no averaging, IPG/2/2 = 37.5 MHz ADC clock (< 40 MHz with ADHSC), hw trigger.
    adc.CFG = ADC_CFG_MODE(2) | ADC_CFG_ADICLK(1) | ADC_CFG_ADIV(1) | ADC_CFG_ADHSC |
              ADC_CFG_ADSTS(sample_time) | ADC_CFG_AVGS(0);
    adc.GC = ADC_GC_CAL;  // calibrate with software trigger, before ADTRG is set
    while (adc.GC & ADC_GC_CAL) {
    }
    if (adc.GS & ADC_GS_CALF) {
        Serial.println("ADC calibration failed");  // seen as garbage by the host; rare
    }
    adc.CFG |= ADC_CFG_ADTRG;
    adc.HC0 = ADC_HC_ADCH(16);  // 16: channel chosen by ADC_ETC
    adc.HC1 = ADC_HC_ADCH(16);
}

static uint32_t chain_pair(const uint8_t inputs[2])
{
    // Two conversions back to back, using ADC_HC0 then ADC_HC1; no interrupts.
    return ADC_ETC_TRIG_CHAIN_CSEL0(inputs[0]) | ADC_ETC_TRIG_CHAIN_HWTS0(1) |
           ADC_ETC_TRIG_CHAIN_B2B0 | ADC_ETC_TRIG_CHAIN_CSEL1(inputs[1]) |
           ADC_ETC_TRIG_CHAIN_HWTS1(2) | ADC_ETC_TRIG_CHAIN_B2B1;
}

static void dma_isr();

static void acquisition_setup()
{
    for (uint8_t pin : ADC_PINS) {
        pinMode(pin, INPUT_DISABLE);  // analog only: no keeper/pull on the pad
    }
    CCM_CCGR1 |= CCM_CCGR1_ADC1(CCM_CCGR_ON) | CCM_CCGR1_ADC2(CCM_CCGR_ON) |
                 CCM_CCGR1_PIT(CCM_CCGR_ON);
    CCM_CCGR2 |= CCM_CCGR2_XBAR1(CCM_CCGR_ON);
    adc_setup(IMXRT_ADC1, 0);
    adc_setup(IMXRT_ADC2, 1);  // longer sample time: TRIG4 finishes after TRIG0

    ADC_ETC_CTRL = ADC_ETC_CTRL_SOFTRST;
    ADC_ETC_CTRL = 0;
    ADC_ETC_CTRL = ADC_ETC_CTRL_TSC_BYPASS | ADC_ETC_CTRL_DMA_MODE_SEL |
                   ADC_ETC_CTRL_TRIG_ENABLE((1 << 0) | (1 << 4));
    IMXRT_ADC_ETC.TRIG[0].CTRL = ADC_ETC_TRIG_CTRL_TRIG_CHAIN(1) |
                                 ADC_ETC_TRIG_CTRL_TRIG_PRIORITY(7);
    IMXRT_ADC_ETC.TRIG[0].CHAIN_1_0 = chain_pair(ADC1_INPUTS);
    IMXRT_ADC_ETC.TRIG[4].CTRL = ADC_ETC_TRIG_CTRL_TRIG_CHAIN(1) |
                                 ADC_ETC_TRIG_CTRL_TRIG_PRIORITY(7);
    IMXRT_ADC_ETC.TRIG[4].CHAIN_1_0 = chain_pair(ADC2_INPUTS);
    ADC_ETC_DMA_CTRL = ADC_ETC_DMA_CTRL_TRIQ_ENABLE(4);

    xbar_connect(XBARA1_IN_PIT_TRIGGER0, XBARA1_OUT_ADC_ETC_TRIG00);
    xbar_connect(XBARA1_IN_PIT_TRIGGER0, XBARA1_OUT_ADC_ETC_TRIG00 + 4);

    // Each request: read TRIG0.RESULT_1_0, step to TRIG4.RESULT_1_0, read, step back.
    volatile uint32_t *r0 = &IMXRT_ADC_ETC.TRIG[0].RESULT_1_0;
    volatile uint32_t *r4 = &IMXRT_ADC_ETC.TRIG[4].RESULT_1_0;
    int32_t step = (int32_t)((uintptr_t)r4 - (uintptr_t)r0);
    dma.begin();
    dma.TCD->SADDR = r0;
    dma.TCD->SOFF = (int16_t)step;
    dma.TCD->ATTR = DMA_TCD_ATTR_SSIZE(2) | DMA_TCD_ATTR_DSIZE(2);
    dma.TCD->NBYTES_MLOFFYES = DMA_TCD_NBYTES_SMLOE | DMA_TCD_NBYTES_MLOFFYES_MLOFF(-2 * step) |
                               DMA_TCD_NBYTES_MLOFFYES_NBYTES(8);
    dma.TCD->SLAST = -2 * step;
    dma.TCD->DADDR = ring;
    dma.TCD->DOFF = 4;
    dma.TCD->CITER_ELINKNO = 2 * HALF_SAMPLES;
    dma.TCD->BITER_ELINKNO = 2 * HALF_SAMPLES;
    dma.TCD->DLASTSGA = -(int32_t)sizeof ring;
    dma.TCD->CSR = DMA_TCD_CSR_INTHALF | DMA_TCD_CSR_INTMAJOR;
    dma.triggerAtHardwareEvent(DMAMUX_SOURCE_ADC_ETC);
    dma.attachInterrupt(dma_isr);
    dma.enable();
}

static void sample_clock_start(uint32_t fs_hz)
{
    PIT_MCR = 0;
    IMXRT_PIT_CHANNELS[0].TCTRL = 0;
    IMXRT_PIT_CHANNELS[0].LDVAL = PIT_CLOCK_HZ / fs_hz - 1;
    IMXRT_PIT_CHANNELS[0].TCTRL = PIT_TCTRL_TEN;
}

static void sample_clock_stop()
{
    IMXRT_PIT_CHANNELS[0].TCTRL = 0;
}

// Runs every HALF_SAMPLES samples: de-interleave the finished half into the frame filling.
static void dma_isr()
{
    dma.clearInterrupt();
    uint64_t h = halves_done;
    const uint16_t *half = ring + (uint32_t)(h & 1) * HALF_SAMPLES * N_CHANNELS;
    arm_dcache_delete((void *)half, HALF_SAMPLES * N_CHANNELS * sizeof(uint16_t));
    uint64_t first = h * HALF_SAMPLES;
    for (int k = 0; k < 2; k++) {
        Frame &f = frame_state[k];
        if (!f.filling) {
            continue;
        }
        uint64_t end = f.start_sample + f.n_samples;
        uint64_t a = first > f.start_sample ? first : f.start_sample;
        uint64_t b = first + HALF_SAMPLES < end ? first + HALF_SAMPLES : end;
        int16_t *dst = frames[k];
        uint32_t clips = 0;
        for (uint64_t i = a; i < b; i++) {
            const uint16_t *s = half + (uint32_t)(i - first) * N_CHANNELS;
            uint32_t j = (uint32_t)(i - f.start_sample);
            for (uint32_t c = 0; c < N_CHANNELS; c++) {
                int32_t raw = s[c] & 0x0FFF;
                clips += (raw == 0) | (raw == 0x0FFF);
                dst[c * MAX_WINDOW_SAMPLES + j] = (int16_t)((raw - 2048) * 16);
            }
        }
        clip_count += clips;
        if (b == end) {
            f.filling = false;
            f.ready = true;
        }
    }
    halves_done = h + 1;
}

/* ------------------------------------------------------------------ emission */

static void build_chirp(const elp_configure &c)
{
    // FlexPWM4 runs from the 150 MHz IPG clock with prescaler 1: 40 kHz = 3750 counts.
    // One PWM period per carrier cycle; the frequency law matches echoloc_ros/core/chirp.py.
    static const int8_t barker13[13] = {1, 1, 1, 1, 1, -1, -1, 1, 1, -1, 1, -1, 1};
    const float clock_hz = (float)F_BUS_ACTUAL;
    const float k_hfm = (c.f1_hz - c.f0_hz) / (c.f1_hz * c.duration_s);
    float t = 0.0f;
    chirp_cycles = 0;
    while (t < c.duration_s && chirp_cycles < MAX_CHIRP_CYCLES) {
        float u = t / c.duration_s;
        float f;
        bool invert = false;
        if (c.chirp_kind == ELP_CHIRP_LFM) {
            f = c.f0_hz + (c.f1_hz - c.f0_hz) * u;
        } else if (c.chirp_kind == ELP_CHIRP_HFM) {
            f = c.f0_hz / (1.0f - k_hfm * t);
        } else {
            // Barker BPSK: a chip of -1 shifts the square wave by half a period.
            f = 0.5f * (c.f0_hz + c.f1_hz);
            int chip = (int)(u * 13.0f);
            invert = barker13[chip > 12 ? 12 : chip] < 0;
        }
        float amplitude = c.taper == ELP_TAPER_HANN ? 0.5f - 0.5f * cosf(2.0f * PI * u) : 1.0f;
        float period = clock_hz / f;
        // Fundamental of a square wave with duty d is proportional to sin(pi d).
        float duty = asinf(amplitude) / PI;
        chirp_period[chirp_cycles] = (uint16_t)(period + 0.5f);
        // Bit 15 marks an inverted Barker chip (see pwm_reload_isr).
        chirp_on[chirp_cycles] = (uint16_t)(duty * period + 0.5f) | (invert ? 0x8000u : 0u);
        chirp_cycles++;
        t += 1.0f / f;
    }
}

static void pwm_reload_isr()
{
    FLEXPWM4_SM2STS = FLEXPWM_SMSTS_RF;
    uint32_t i = chirp_index;
    if (i < chirp_cycles) {
        uint16_t period = chirp_period[i];
        uint16_t on = chirp_on[i] & 0x7FFFu;
        // Output A goes high at VAL2 and low at VAL3; an inverted Barker chip starts its pulse
        // half a period later, which is a 180 degree phase shift of the fundamental.
        uint16_t start = (chirp_on[i] & 0x8000u) ? period / 2 : 0;
        FLEXPWM4_SM2VAL1 = period - 1;
        FLEXPWM4_SM2VAL2 = start;
        FLEXPWM4_SM2VAL3 = start + on;
        chirp_index = i + 1;
    } else {
        FLEXPWM4_SM2VAL3 = 0;  // output stays low: emitter silent until the next frame
        FLEXPWM4_SM2INTEN = 0;
    }
    FLEXPWM4_MCTRL |= FLEXPWM_MCTRL_LDOK(1 << 2);
    asm volatile("dsb");
}

static void emitter_setup()
{
    // Let the core mux the pin and configure FlexPWM4.2; then drive VAL1/VAL3 directly.
    analogWriteFrequency(PIN_TX, 40000);
    analogWrite(PIN_TX, 0);
    attachInterruptVector(IRQ_FLEXPWM4_2, pwm_reload_isr);
    NVIC_ENABLE_IRQ(IRQ_FLEXPWM4_2);
}

static void chirp_start()
{
    chirp_index = 0;
    FLEXPWM4_SM2STS = FLEXPWM_SMSTS_RF;
    FLEXPWM4_SM2INTEN = FLEXPWM_SMINTEN_RIE;
    pwm_reload_isr();
}

/* ------------------------------------------------------------------ frames */

static void begin_acquisition()
{
    int k = frame_state[0].filling || frame_state[0].ready ? 1 : 0;
    Frame &f = frame_state[k];
    if (f.filling || f.ready) {
        overrun_count++;  // both buffers busy: the host will see a device_seq gap
        device_seq++;
        return;
    }
    __disable_irq();
    uint32_t pos = ((uint32_t)dma.TCD->DADDR - (uint32_t)ring) / (N_CHANNELS * 2);
    uint64_t h = halves_done;
    // The first chirp cycle starts at the PWM's next reload (counter runs 0..VAL1).
    uint32_t to_reload = FLEXPWM4_SM2VAL1 + 1 - FLEXPWM4_SM2CNT;
    uint64_t now = ticks64();
    // DADDR may already be in the next half with its interrupt pending: wrap the offset.
    uint32_t offset = (pos + 2 * HALF_SAMPLES - (uint32_t)(h & 1) * HALF_SAMPLES) %
                      (2 * HALF_SAMPLES);
    uint32_t lead = (uint32_t)(((uint64_t)to_reload * config.fs_hz + F_BUS_ACTUAL - 1) /
                               F_BUS_ACTUAL);
    f.start_sample = h * HALF_SAMPLES + offset + lead;
    f.acq_ticks = now + (uint64_t)to_reload * (F_CPU_ACTUAL / F_BUS_ACTUAL);
    f.device_seq = device_seq++;
    f.n_samples = config.window_samples;
    f.filling = true;
    chirp_start();
    __enable_irq();
}

static void send_ready_frames()
{
    for (int k = 0; k < 2; k++) {
        if (frame_state[k].ready) {
            send_echo(frame_state[k], frames[k]);
            frame_state[k].ready = false;
        }
    }
}

/* ------------------------------------------------------------------ commands */

static elp_error check_configure(const elp_configure &c)
{
    if (c.fs_hz == 0 || c.fs_hz > MAX_FS_HZ || PIT_CLOCK_HZ % c.fs_hz != 0) {
        return ELP_ERR_INVALID_PARAM;  // the PIT must divide 24 MHz exactly
    }
    float window_s = (float)c.window_samples / c.fs_hz;
    bool sweep = c.chirp_kind != ELP_CHIRP_TONE;
    if (c.window_samples == 0 || c.window_samples > MAX_WINDOW_SAMPLES ||
        !(c.f0_hz >= 20000.0f && c.f0_hz <= 60000.0f) ||
        (sweep && !(c.f1_hz >= 20000.0f && c.f1_hz <= 60000.0f)) ||
        (c.chirp_kind == ELP_CHIRP_EXPONENTIAL && c.f0_hz == c.f1_hz) ||
        !(c.duration_s > 0.0f && c.duration_s < window_s) ||
        !(c.frame_rate_hz > 0.0f && c.frame_rate_hz * window_s <= 1.0f)) {
        return ELP_ERR_INVALID_PARAM;  // 20-60 kHz: what the transducers pass
    }
    return ELP_ERR_NONE;
}

static void start_streaming()
{
    build_chirp(config);
    // Restart the ring at half 0 so halves_done and the DMA position agree.
    dma.disable();
    ADC_ETC_DMA_CTRL |= ADC_ETC_DMA_CTRL_TRIQ_ENABLE(4) << 16;  // drop a stale request (w1c)
    dma.TCD->SADDR = &IMXRT_ADC_ETC.TRIG[0].RESULT_1_0;
    dma.TCD->DADDR = ring;
    dma.TCD->CITER_ELINKNO = 2 * HALF_SAMPLES;
    dma.enable();
    halves_done = 0;
    frame_state[0] = Frame();
    frame_state[1] = Frame();
    sample_clock_start(config.fs_hz);
    streaming = true;
    next_frame_us = micros() + 1000;  // let the ring fill before the first chirp
}

static void stop_streaming()
{
    streaming = false;
    sample_clock_stop();
    FLEXPWM4_SM2INTEN = 0;
    FLEXPWM4_SM2VAL3 = 0;
    FLEXPWM4_MCTRL |= FLEXPWM_MCTRL_LDOK(1 << 2);
    frame_state[0].filling = frame_state[1].filling = false;
    frame_state[0].ready = frame_state[1].ready = false;
}

static void on_command(void *ctx, const elp_command *cmd)
{
    (void)ctx;
    if (cmd->error != ELP_ERR_NONE) {
        send_nack(cmd, cmd->error);
        return;
    }
    switch (cmd->type) {
    case ELP_PING: {
        uint8_t p[4];
        send_frame(ELP_PONG, p, elp_put_token(p, cmd->u.token));
        break;
    }
    case ELP_GET_INFO:
        send_info();
        break;
    case ELP_GET_STATUS:
        send_status();
        break;
    case ELP_CONFIGURE: {
        elp_error err = streaming ? ELP_ERR_BUSY : check_configure(cmd->u.configure);
        if (err != ELP_ERR_NONE) {
            send_nack(cmd, err);
        } else {
            config = cmd->u.configure;
            send_ack(cmd);
        }
        break;
    }
    case ELP_START:
        if (!streaming) {
            start_streaming();
        }
        send_ack(cmd);
        break;
    case ELP_STOP:
        stop_streaming();
        send_ack(cmd);
        break;
    default:
        send_nack(cmd, ELP_ERR_UNKNOWN_TYPE);
        break;
    }
}

/* ------------------------------------------------------------------ main */

void setup()
{
    ARM_DEMCR |= ARM_DEMCR_TRCENA;
    ARM_DWT_CTRL |= ARM_DWT_CTRL_CYCCNTENA;
    Serial.begin(12000000);  // USB: the rate is ignored, the link runs at USB speed
    elp_parser_init(&parser);
    config.chirp_kind = ELP_CHIRP_LINEAR;
    config.taper = ELP_TAPER_HANN;
    config.f0_hz = 35000.0f;
    config.f1_hz = 45000.0f;
    config.duration_s = 0.002f;
    config.fs_hz = 250000;
    config.window_samples = 10000;
    config.frame_rate_hz = 20.0f;
    // VIN is read once at boot: afterwards both ADCs answer only to ADC_ETC's hardware
    // trigger, and a software analogRead() would wait forever.
    analogReadResolution(12);
    supply_v = analogRead(PIN_VIN_SENSE) * (3.3f / 4095.0f) * VIN_DIVIDER;
    acquisition_setup();
    emitter_setup();
}

void loop()
{
    ticks64();  // keep the 64-bit extension of the 7.2 s cycle counter current

    uint8_t rx[64];
    int n = Serial.available();
    if (n > 0) {
        n = Serial.readBytes((char *)rx, n < (int)sizeof rx ? n : (int)sizeof rx);
        elp_parser_feed(&parser, rx, (size_t)n, on_command, NULL);
    }

    if (streaming) {
        uint32_t period_us = (uint32_t)(1e6f / config.frame_rate_hz);
        if ((int32_t)(micros() - next_frame_us) >= 0) {
            next_frame_us += period_us;
            begin_acquisition();
        }
        send_ready_frames();
        if (millis() - last_status_ms >= STATUS_PERIOD_MS) {
            last_status_ms = millis();
            send_status();
        }
    }
}
