//! Length-prefixed JSON frames: a 4-byte big-endian length, then that many bytes of JSON.
//! Blocking versions for the zygote and workers (no threads, no runtime); async versions for
//! the supervisor.

use std::io::{self, Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(u32),
    #[error("malformed frame: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error(transparent)]
    Io(#[from] io::Error),
}

pub fn encode(value: &impl Serialize) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(value)?;
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge(u32::MAX))?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

pub fn write_sync(writer: &mut impl Write, value: &impl Serialize) -> Result<(), FrameError> {
    writer.write_all(&encode(value)?)?;
    Ok(())
}

pub fn read_sync<T: DeserializeOwned>(reader: &mut impl Read, max: u32) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    if let Err(err) = reader.read_exact(&mut len) {
        return Err(if err.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Closed
        } else {
            err.into()
        });
    }
    let len = u32::from_be_bytes(len);
    if len > max {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len as usize];
    reader.read_exact(&mut body)?;
    Ok(serde_json::from_slice(&body)?)
}

pub async fn write_async(
    writer: &mut (impl AsyncWrite + Unpin),
    value: &impl Serialize,
) -> Result<(), FrameError> {
    writer.write_all(&encode(value)?).await?;
    writer.flush().await?;
    Ok(())
}

pub async fn read_async<T: DeserializeOwned>(
    reader: &mut (impl AsyncRead + Unpin),
    max: u32,
) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    if let Err(err) = reader.read_exact(&mut len).await {
        return Err(if err.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Closed
        } else {
            err.into()
        });
    }
    let len = u32::from_be_bytes(len);
    if len > max {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len as usize];
    reader.read_exact(&mut body).await?;
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let bytes = encode(&serde_json::json!({"a": 1})).unwrap();
        let value: serde_json::Value = read_sync(&mut bytes.as_slice(), 100).unwrap();
        assert_eq!(value["a"], 1);
        assert!(matches!(
            read_sync::<serde_json::Value>(&mut bytes.as_slice(), 3),
            Err(FrameError::TooLarge(_))
        ));
        assert!(matches!(
            read_sync::<serde_json::Value>(&mut &bytes[..2], 100),
            Err(FrameError::Closed)
        ));
        let mut garbage = 3u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(b"{{{");
        assert!(matches!(
            read_sync::<serde_json::Value>(&mut garbage.as_slice(), 100),
            Err(FrameError::Malformed(_))
        ));
    }
}
