//! Face boxes in whole image pixels, as the block maps and the heatmap use
//! them (faces are found by [`super::yunet`]).

/// A face box in image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// Detector score in [0, 1].
    pub score: f64,
}
