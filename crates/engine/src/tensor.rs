//! Backend-neutral tensors: what callers hand to the engine and get back.

use ndarray::{ArrayD, Axis, IxDyn, Slice};
use serde::{Deserialize, Serialize};

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 64-bit signed integer.
    I64,
}

impl DType {
    /// Lower-case name as written in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
        }
    }
}

/// Tensor data of one of the supported element types.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// 32-bit float tensor.
    F32(ArrayD<f32>),
    /// 64-bit integer tensor.
    I64(ArrayD<i64>),
}

impl TensorData {
    /// Element type.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::I64(_) => DType::I64,
        }
    }

    /// Shape (dimensions).
    pub fn shape(&self) -> &[usize] {
        match self {
            TensorData::F32(a) => a.shape(),
            TensorData::I64(a) => a.shape(),
        }
    }

    /// The f32 array, if this is one.
    pub fn as_f32(&self) -> Option<&ArrayD<f32>> {
        match self {
            TensorData::F32(a) => Some(a),
            TensorData::I64(_) => None,
        }
    }

    /// The i64 array, if this is one.
    pub fn as_i64(&self) -> Option<&ArrayD<i64>> {
        match self {
            TensorData::I64(a) => Some(a),
            TensorData::F32(_) => None,
        }
    }

    /// Bit patterns of every element, in logical (row-major) order. Used to
    /// compare non-batched inputs exactly.
    pub(crate) fn bits(&self) -> Vec<u64> {
        match self {
            TensorData::F32(a) => a.iter().map(|v| u64::from(v.to_bits())).collect(),
            TensorData::I64(a) => a.iter().map(|v| *v as u64).collect(),
        }
    }

    /// Concatenates tensors of the same dtype along `axis`.
    ///
    /// # Panics
    /// Never for inputs the batcher built (same dtype, same other dims); the
    /// function returns `None` otherwise.
    pub(crate) fn concat(parts: &[&TensorData], axis: usize) -> Option<TensorData> {
        match parts.first()? {
            TensorData::F32(_) => {
                let views: Option<Vec<_>> =
                    parts.iter().map(|p| p.as_f32().map(|a| a.view())).collect();
                ndarray::concatenate(Axis(axis), &views?)
                    .ok()
                    .map(TensorData::F32)
            }
            TensorData::I64(_) => {
                let views: Option<Vec<_>> =
                    parts.iter().map(|p| p.as_i64().map(|a| a.view())).collect();
                ndarray::concatenate(Axis(axis), &views?)
                    .ok()
                    .map(TensorData::I64)
            }
        }
    }

    /// The `[start, end)` slice along `axis`, as an owned standard-layout array.
    pub(crate) fn slice_axis(&self, axis: usize, start: usize, end: usize) -> TensorData {
        let s = Slice::from(start..end);
        match self {
            TensorData::F32(a) => TensorData::F32(
                a.slice_axis(Axis(axis), s)
                    .as_standard_layout()
                    .into_owned(),
            ),
            TensorData::I64(a) => TensorData::I64(
                a.slice_axis(Axis(axis), s)
                    .as_standard_layout()
                    .into_owned(),
            ),
        }
    }

    /// Builds an f32 tensor from a shape and row-major data.
    pub fn f32_from_vec(shape: &[usize], data: Vec<f32>) -> Option<TensorData> {
        ArrayD::from_shape_vec(IxDyn(shape), data)
            .ok()
            .map(TensorData::F32)
    }

    /// Builds an i64 tensor from a shape and row-major data.
    pub fn i64_from_vec(shape: &[usize], data: Vec<i64>) -> Option<TensorData> {
        ArrayD::from_shape_vec(IxDyn(shape), data)
            .ok()
            .map(TensorData::I64)
    }
}

impl From<ArrayD<f32>> for TensorData {
    fn from(a: ArrayD<f32>) -> Self {
        TensorData::F32(a)
    }
}

impl From<ArrayD<i64>> for TensorData {
    fn from(a: ArrayD<i64>) -> Self {
        TensorData::I64(a)
    }
}

/// A tensor with the name of the model input or output it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Input or output name, as in the manifest.
    pub name: String,
    /// The values.
    pub data: TensorData,
}

impl NamedTensor {
    /// Creates a named tensor.
    pub fn new(name: impl Into<String>, data: impl Into<TensorData>) -> Self {
        NamedTensor {
            name: name.into(),
            data: data.into(),
        }
    }
}

/// Finds a tensor by name in a list.
pub fn find<'a>(tensors: &'a [NamedTensor], name: &str) -> Option<&'a TensorData> {
    tensors.iter().find(|t| t.name == name).map(|t| &t.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_and_split_on_axis_1_round_trip() {
        let a = TensorData::f32_from_vec(&[2, 1, 2], vec![1., 2., 3., 4.]).unwrap();
        let b =
            TensorData::f32_from_vec(&[2, 2, 2], vec![5., 6., 7., 8., 9., 10., 11., 12.]).unwrap();
        let c = TensorData::concat(&[&a, &b], 1).unwrap();
        assert_eq!(c.shape(), &[2, 3, 2]);
        assert_eq!(
            c.as_f32().unwrap().iter().copied().collect::<Vec<_>>(),
            vec![1., 2., 5., 6., 7., 8., 3., 4., 9., 10., 11., 12.]
        );
        assert_eq!(c.slice_axis(1, 0, 1), a);
        assert_eq!(c.slice_axis(1, 1, 3), b);
    }

    #[test]
    fn concat_refuses_mixed_dtypes() {
        let a = TensorData::f32_from_vec(&[1], vec![1.]).unwrap();
        let b = TensorData::i64_from_vec(&[1], vec![1]).unwrap();
        assert!(TensorData::concat(&[&a, &b], 0).is_none());
    }
}
