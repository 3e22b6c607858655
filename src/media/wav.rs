//! The announcement played to the PBX while a call is held: a WAV file read
//! once at start into ready-to-send G.711 payloads, one per law, so that
//! streaming it costs no conversion.
//!
//! Only what telephony can play unchanged is accepted: 8 kHz mono, either
//! 16-bit PCM or already µ-law / A-law. Resampling or mixing down would hide
//! a wrong file behind degraded audio; refusing it names what was found.
//! The RIFF reader is our own because common WAV crates do not read the
//! G.711 formats; every length in the file is checked before it is used.

use std::path::Path;

use super::g711;

/// Samples in one 20 ms packet at 8 kHz.
pub const SAMPLES_PER_PACKET: usize = 160;
/// Files larger than this are refused: a held call needs seconds of audio,
/// not an album.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

const FORMAT_PCM: u16 = 1;
const FORMAT_ALAW: u16 = 6;
const FORMAT_ULAW: u16 = 7;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// Why a WAV file cannot be used as the announcement.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("file is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    #[error("not a RIFF/WAVE file")]
    NotWave,
    #[error("truncated: {0}")]
    Truncated(&'static str),
    #[error("no `fmt ` chunk before the audio data")]
    MissingFormat,
    #[error("no `data` chunk")]
    MissingData,
    #[error("the data chunk holds no samples")]
    Empty,
    #[error(
        "unsupported audio: {format}, {rate} Hz, {channels} channel(s), {bits} bits per sample \
         (use 8000 Hz mono, 16-bit PCM or G.711 µ-law/A-law)"
    )]
    Unsupported {
        format: String,
        rate: u32,
        channels: u16,
        bits: u16,
    },
}

/// An announcement as G.711 payload, in both laws, padded with silence to a
/// whole number of 20 ms packets so that it loops without a short packet.
#[derive(Clone, PartialEq, Eq)]
pub struct Announcement {
    pcmu: Vec<u8>,
    pcma: Vec<u8>,
}

impl std::fmt::Debug for Announcement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Announcement({} ms)", self.duration_ms())
    }
}

impl Announcement {
    /// Reads and converts the WAV file at `path`.
    pub fn from_wav_file(path: &Path) -> Result<Announcement, WavError> {
        let read_error = |source| WavError::Read {
            path: path.display().to_string(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read_error)?.len();
        if len > MAX_FILE_BYTES {
            return Err(WavError::TooLarge);
        }
        let bytes = std::fs::read(path).map_err(read_error)?;
        Self::from_wav_bytes(&bytes)
    }

    /// Converts a WAV file already in memory.
    pub fn from_wav_bytes(bytes: &[u8]) -> Result<Announcement, WavError> {
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(WavError::TooLarge);
        }
        let (format, data) = read_riff(bytes)?;
        let samples: Vec<i16> = match format.kind {
            SampleKind::Linear16 => data
                .chunks_exact(2)
                .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
                .collect(),
            SampleKind::Ulaw => {
                return Self::from_ulaw(data.to_vec());
            }
            SampleKind::Alaw => {
                return Self::from_alaw(data.to_vec());
            }
        };
        if samples.is_empty() {
            return Err(WavError::Empty);
        }
        Ok(Self::padded(
            samples.iter().map(|s| g711::linear_to_ulaw(*s)).collect(),
            samples.iter().map(|s| g711::linear_to_alaw(*s)).collect(),
        ))
    }

    /// Builds an announcement from 8 kHz linear samples (tones, tests).
    pub fn from_linear(samples: &[i16]) -> Result<Announcement, WavError> {
        if samples.is_empty() {
            return Err(WavError::Empty);
        }
        Ok(Self::padded(
            samples.iter().map(|s| g711::linear_to_ulaw(*s)).collect(),
            samples.iter().map(|s| g711::linear_to_alaw(*s)).collect(),
        ))
    }

    fn from_ulaw(pcmu: Vec<u8>) -> Result<Announcement, WavError> {
        if pcmu.is_empty() {
            return Err(WavError::Empty);
        }
        let pcma = pcmu
            .iter()
            .map(|b| g711::ULAW_TO_ALAW[usize::from(*b)])
            .collect();
        Ok(Self::padded(pcmu, pcma))
    }

    fn from_alaw(pcma: Vec<u8>) -> Result<Announcement, WavError> {
        if pcma.is_empty() {
            return Err(WavError::Empty);
        }
        let pcmu = pcma
            .iter()
            .map(|b| g711::ALAW_TO_ULAW[usize::from(*b)])
            .collect();
        Ok(Self::padded(pcmu, pcma))
    }

    fn padded(mut pcmu: Vec<u8>, mut pcma: Vec<u8>) -> Announcement {
        let whole = pcmu.len().div_ceil(SAMPLES_PER_PACKET) * SAMPLES_PER_PACKET;
        pcmu.resize(whole, g711::ULAW_SILENCE);
        pcma.resize(whole, g711::ALAW_SILENCE);
        Announcement { pcmu, pcma }
    }

    /// The built-in announcement used when none is configured: North
    /// American ringback (440 Hz + 480 Hz, 2 s on, 4 s off), so a held
    /// caller hears that the call is progressing.
    pub fn ringback() -> Announcement {
        const RATE: f64 = 8_000.0;
        let on = 2 * 8_000;
        let off = 4 * 8_000;
        let mut samples = Vec::with_capacity(on + off);
        for n in 0..on {
            let t = n as f64 / RATE;
            let wave = (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                + (2.0 * std::f64::consts::PI * 480.0 * t).sin();
            // About -19 dBm0 per tone, the level the tone plans specify.
            samples.push((wave * 3_000.0) as i16);
        }
        samples.resize(on + off, 0);
        Self::padded(
            samples.iter().map(|s| g711::linear_to_ulaw(*s)).collect(),
            samples.iter().map(|s| g711::linear_to_alaw(*s)).collect(),
        )
    }

    /// The µ-law payload (PCMU).
    pub fn pcmu(&self) -> &[u8] {
        &self.pcmu
    }

    /// The A-law payload (PCMA).
    pub fn pcma(&self) -> &[u8] {
        &self.pcma
    }

    /// Length once looped, in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.pcmu.len() as u64 / 8
    }
}

#[derive(Debug, Clone, Copy)]
enum SampleKind {
    Linear16,
    Ulaw,
    Alaw,
}

struct Format {
    kind: SampleKind,
}

fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at + 2)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Walks the RIFF chunks and returns the format and the audio bytes. A data
/// chunk whose declared size runs past the end (a recorder that never
/// rewrote it) is read up to the end of the file.
fn read_riff(bytes: &[u8]) -> Result<(Format, &[u8]), WavError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWave);
    }
    let mut at = 12;
    let mut format = None;
    while at < bytes.len() {
        let id = bytes
            .get(at..at + 4)
            .ok_or(WavError::Truncated("chunk header"))?;
        let size = le_u32(bytes, at + 4).ok_or(WavError::Truncated("chunk header"))? as usize;
        let body_start = at + 8;
        let body_end = body_start.saturating_add(size).min(bytes.len());
        let body = &bytes[body_start.min(bytes.len())..body_end];
        match id {
            b"fmt " => format = Some(read_format(body)?),
            b"data" => {
                let format = format.ok_or(WavError::MissingFormat)?;
                let data = match format.kind {
                    // An odd trailing byte is half a sample.
                    SampleKind::Linear16 => &body[..body.len() & !1],
                    _ => body,
                };
                if data.is_empty() {
                    return Err(WavError::Empty);
                }
                return Ok((format, data));
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at = body_start.saturating_add(size).saturating_add(size & 1);
    }
    Err(if format.is_some() {
        WavError::MissingData
    } else {
        WavError::MissingFormat
    })
}

fn read_format(body: &[u8]) -> Result<Format, WavError> {
    let truncated = WavError::Truncated("fmt chunk");
    let mut tag = le_u16(body, 0).ok_or(truncated)?;
    let channels = le_u16(body, 2).ok_or(WavError::Truncated("fmt chunk"))?;
    let rate = le_u32(body, 4).ok_or(WavError::Truncated("fmt chunk"))?;
    let bits = le_u16(body, 14).ok_or(WavError::Truncated("fmt chunk"))?;
    if tag == FORMAT_EXTENSIBLE {
        // The real format is the first two bytes of the sub-format GUID.
        tag = le_u16(body, 24).ok_or(WavError::Truncated("extensible fmt chunk"))?;
    }
    let kind = match (tag, bits) {
        (FORMAT_PCM, 16) => Some(SampleKind::Linear16),
        (FORMAT_ULAW, 8) => Some(SampleKind::Ulaw),
        (FORMAT_ALAW, 8) => Some(SampleKind::Alaw),
        _ => None,
    };
    match kind {
        Some(kind) if rate == 8_000 && channels == 1 => Ok(Format { kind }),
        _ => Err(WavError::Unsupported {
            format: format_name(tag),
            rate,
            channels,
            bits,
        }),
    }
}

fn format_name(tag: u16) -> String {
    match tag {
        FORMAT_PCM => "PCM".into(),
        3 => "IEEE float".into(),
        FORMAT_ALAW => "A-law".into(),
        FORMAT_ULAW => "µ-law".into(),
        0x55 => "MP3".into(),
        other => format!("format tag {other:#06x}"),
    }
}

/// A minimal WAV file, for tests of this module and of its users.
pub fn wav_bytes(format_tag: u16, rate: u32, channels: u16, bits: u16, data: &[u8]) -> Vec<u8> {
    let block_align = channels * bits.div_ceil(8);
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&format_tag.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm16(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn linear_pcm_becomes_both_laws_padded_to_whole_packets() {
        let samples: Vec<i16> = (0..200).map(|i| (i * 100) as i16).collect();
        let wav = wav_bytes(FORMAT_PCM, 8_000, 1, 16, &pcm16(&samples));
        let a = Announcement::from_wav_bytes(&wav).unwrap();
        assert_eq!(a.pcmu().len(), 320);
        assert_eq!(a.pcma().len(), 320);
        assert_eq!(a.pcmu()[5], g711::linear_to_ulaw(500));
        assert_eq!(a.pcma()[5], g711::linear_to_alaw(500));
        assert!(a.pcmu()[200..].iter().all(|b| *b == g711::ULAW_SILENCE));
        assert!(a.pcma()[200..].iter().all(|b| *b == g711::ALAW_SILENCE));
        assert_eq!(a.duration_ms(), 40);
    }

    #[test]
    fn g711_files_are_taken_as_they_are() {
        let ulaw: Vec<u8> = (0..160).map(|i| i as u8).collect();
        let a = Announcement::from_wav_bytes(&wav_bytes(FORMAT_ULAW, 8_000, 1, 8, &ulaw)).unwrap();
        assert_eq!(a.pcmu(), &ulaw[..]);
        assert_eq!(a.pcma()[7], g711::ULAW_TO_ALAW[7]);
        let alaw = vec![0x2Au8; 160];
        let a = Announcement::from_wav_bytes(&wav_bytes(FORMAT_ALAW, 8_000, 1, 8, &alaw)).unwrap();
        assert_eq!(a.pcma(), &alaw[..]);
    }

    #[test]
    fn extra_chunks_and_an_overlong_data_size_are_tolerated() {
        let mut wav = b"RIFF\0\0\0\0WAVELIST\x03\0\0\0abc\0".to_vec();
        let rest = wav_bytes(FORMAT_PCM, 8_000, 1, 16, &pcm16(&[1, 2, 3]));
        wav.extend_from_slice(&rest[12..]);
        // Declare more data than there is.
        let data_size_at = wav.len() - 6 - 4;
        wav[data_size_at..data_size_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let a = Announcement::from_wav_bytes(&wav).unwrap();
        assert_eq!(a.pcmu()[2], g711::linear_to_ulaw(3));
    }

    #[test]
    fn wrong_formats_say_what_was_found() {
        let stereo = wav_bytes(FORMAT_PCM, 8_000, 2, 16, &[0; 8]);
        let message = Announcement::from_wav_bytes(&stereo)
            .unwrap_err()
            .to_string();
        assert!(message.contains("2 channel"), "{message}");
        let wideband = wav_bytes(FORMAT_PCM, 16_000, 1, 16, &[0; 8]);
        let message = Announcement::from_wav_bytes(&wideband)
            .unwrap_err()
            .to_string();
        assert!(message.contains("16000 Hz"), "{message}");
        let float = wav_bytes(3, 8_000, 1, 32, &[0; 8]);
        let message = Announcement::from_wav_bytes(&float)
            .unwrap_err()
            .to_string();
        assert!(message.contains("IEEE float"), "{message}");
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        let good = wav_bytes(FORMAT_PCM, 8_000, 1, 16, &pcm16(&[1, 2, 3, 4]));
        for cut in 0..good.len() {
            let _ = Announcement::from_wav_bytes(&good[..cut]);
        }
        assert!(matches!(
            Announcement::from_wav_bytes(b"RIFX0000WAVE"),
            Err(WavError::NotWave)
        ));
        assert!(matches!(
            Announcement::from_wav_bytes(&good[..44]),
            Err(WavError::Empty)
        ));
        assert!(matches!(
            Announcement::from_wav_bytes(&good[..36]),
            Err(WavError::MissingData)
        ));
        let mut no_fmt = b"RIFF\0\0\0\0WAVE".to_vec();
        no_fmt.extend_from_slice(&good[36..]);
        assert!(matches!(
            Announcement::from_wav_bytes(&no_fmt),
            Err(WavError::MissingFormat)
        ));
        let mut huge_chunk = good[..12].to_vec();
        huge_chunk.extend_from_slice(b"junk\xff\xff\xff\xff");
        assert!(Announcement::from_wav_bytes(&huge_chunk).is_err());
    }

    #[test]
    fn the_built_in_ringback_is_six_seconds_of_tone_then_silence() {
        let a = Announcement::ringback();
        assert_eq!(a.duration_ms(), 6_000);
        assert!(a.pcmu()[..16_000].iter().any(|b| *b != g711::ULAW_SILENCE));
        assert!(a.pcmu()[16_000..].iter().all(|b| *b == g711::ULAW_SILENCE));
    }
}
