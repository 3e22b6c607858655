//! G.711 (ITU-T) µ-law and A-law companding, and the tables that convert one
//! law into the other.
//!
//! The PBX and the trunk may each pick a different law; converting a payload
//! byte by byte through a 256-entry table keeps the relay's per-packet cost
//! at one lookup a byte. Everything here is `const`, so the tables are built
//! by the compiler, not at start.

/// Added before µ-law segment search so that the segment boundaries fall on
/// powers of two (G.711 §3.1).
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude µ-law can represent once the bias is added.
const ULAW_CLIP: i32 = 32_635;

/// µ-law byte of silence (encoded 0).
pub const ULAW_SILENCE: u8 = 0xFF;
/// A-law byte of silence (encoded 0 with the even-bit inversion).
pub const ALAW_SILENCE: u8 = 0xD5;

/// Encodes one 16-bit linear sample as µ-law.
pub const fn linear_to_ulaw(sample: i16) -> u8 {
    let mut magnitude = sample as i32;
    let sign = if magnitude < 0 {
        magnitude = -magnitude;
        0x80
    } else {
        0
    };
    if magnitude > ULAW_CLIP {
        magnitude = ULAW_CLIP;
    }
    magnitude += ULAW_BIAS;
    // The biased magnitude lies in 0x84..=0x7FFF: its highest set bit is
    // bit 7 to bit 14, which is segment 0 to 7.
    let exponent = (31 - (magnitude as u32).leading_zeros()) as i32 - 7;
    let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Decodes one µ-law byte to a 16-bit linear sample.
pub const fn ulaw_to_linear(byte: u8) -> i16 {
    let byte = !byte;
    let magnitude = ((((byte & 0x0F) as i32) << 3) + ULAW_BIAS) << ((byte & 0x70) >> 4);
    if byte & 0x80 != 0 {
        (ULAW_BIAS - magnitude) as i16
    } else {
        (magnitude - ULAW_BIAS) as i16
    }
}

/// Encodes one 16-bit linear sample as A-law.
pub const fn linear_to_alaw(sample: i16) -> u8 {
    // A-law works on 13 bits; the low three of a 16-bit sample are noise to it.
    let mut magnitude = (sample as i32) >> 3;
    let mask: i32 = if magnitude >= 0 {
        0xD5
    } else {
        magnitude = -magnitude - 1;
        0x55
    };
    // Segment ends: 0x1F, 0x3F, 0x7F, … 0xFFF.
    let mut segment = 0;
    while segment < 8 && magnitude > (0x1F << segment) | ((1 << segment) - 1) {
        segment += 1;
    }
    if segment >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let shift = if segment < 2 { 1 } else { segment };
    let value = (segment << 4) | ((magnitude >> shift) & 0x0F);
    (value ^ mask) as u8
}

/// Decodes one A-law byte to a 16-bit linear sample.
pub const fn alaw_to_linear(byte: u8) -> i16 {
    let byte = byte ^ 0x55;
    let mut magnitude = ((byte & 0x0F) as i32) << 4;
    let segment = ((byte & 0x70) >> 4) as i32;
    magnitude = match segment {
        0 => magnitude + 8,
        1 => magnitude + 0x108,
        _ => (magnitude + 0x108) << (segment - 1),
    };
    if byte & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn ulaw_to_alaw_table() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = linear_to_alaw(ulaw_to_linear(i as u8));
        i += 1;
    }
    table
}

const fn alaw_to_ulaw_table() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = linear_to_ulaw(alaw_to_linear(i as u8));
        i += 1;
    }
    table
}

/// µ-law byte → A-law byte, through the linear value.
pub static ULAW_TO_ALAW: [u8; 256] = ulaw_to_alaw_table();
/// A-law byte → µ-law byte, through the linear value.
pub static ALAW_TO_ULAW: [u8; 256] = alaw_to_ulaw_table();

/// Rewrites a µ-law payload as A-law in place.
pub fn transcode_ulaw_to_alaw(payload: &mut [u8]) {
    for byte in payload {
        *byte = ULAW_TO_ALAW[usize::from(*byte)];
    }
}

/// Rewrites an A-law payload as µ-law in place.
pub fn transcode_alaw_to_ulaw(payload: &mut [u8]) {
    for byte in payload {
        *byte = ALAW_TO_ULAW[usize::from(*byte)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_matches_the_reference_values() {
        // Values of the ITU-T G.191 reference implementation (Sun g711.c).
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_ulaw(1000), 0xCE);
        assert_eq!(linear_to_ulaw(-1000), 0x4E);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x80), 32_124);
        assert_eq!(ulaw_to_linear(0x00), -32_124);
        assert_eq!(ulaw_to_linear(0xCE), 988);
        assert_eq!(ulaw_to_linear(0x4E), -988);
    }

    #[test]
    fn alaw_matches_the_reference_values() {
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(linear_to_alaw(1000), 0xFA);
        assert_eq!(linear_to_alaw(-1000), 0x7A);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32_256);
        assert_eq!(alaw_to_linear(0x2A), -32_256);
        assert_eq!(alaw_to_linear(0xFA), 1008);
    }

    #[test]
    fn every_code_survives_a_decode_encode_round_trip() {
        for code in 0..=255u8 {
            let ulaw = linear_to_ulaw(ulaw_to_linear(code));
            // µ-law has two zeros (0x7F and 0xFF); both decode to 0.
            if code == 0x7F {
                assert_eq!(ulaw, 0xFF);
            } else {
                assert_eq!(ulaw, code, "µ-law {code:#04x}");
            }
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "A-law {code:#04x}"
            );
        }
    }

    #[test]
    fn encoding_error_stays_within_the_segment_step() {
        for sample in (i16::MIN..=i16::MAX).step_by(7) {
            let s = i32::from(sample);
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(sample)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(sample)));
            // The largest step of either law is 1024 (µ-law) / 1024 (A-law).
            assert!((s - u).abs() <= 1024, "µ-law {sample} → {u}");
            assert!((s - a).abs() <= 1024, "A-law {sample} → {a}");
        }
    }

    #[test]
    fn transcoding_tables_agree_with_going_through_linear() {
        for code in 0..=255u8 {
            let mut one = [code];
            transcode_ulaw_to_alaw(&mut one);
            assert_eq!(one[0], linear_to_alaw(ulaw_to_linear(code)));
            let mut one = [code];
            transcode_alaw_to_ulaw(&mut one);
            assert_eq!(one[0], linear_to_ulaw(alaw_to_linear(code)));
        }
        assert_eq!(ULAW_TO_ALAW[usize::from(ULAW_SILENCE)], ALAW_SILENCE);
        // A-law has no zero: its quietest code is ±8, which µ-law can hold.
        assert_eq!(ALAW_TO_ULAW[usize::from(ALAW_SILENCE)], 0xFE);
        assert_eq!(ulaw_to_linear(0xFE), 8);
    }
}
