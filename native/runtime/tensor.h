// Tensors as the graph code sees them: a dtype, a shape and a byte range of a
// backend-owned buffer (host memory for the CPU backend, device memory for CUDA).
// Always contiguous, row-major. Views (row slices, reshapes) share the buffer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "runtime/error.h"

namespace ivl {

// I8: a quantized weight matrix [N, K] of int8 q with fp32 scales attached to the tensor
// (Tensor::scales(); W'[n, k] = q[n, k] · scale[n, k / scaleGroup], see runtime/quantize.h).
enum class DType : uint8_t { F32, BF16, F16, I32, I8 };

inline size_t dtypeSize(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::I32: return 4;
    case DType::I8: return 1;
  }
  return 0;
}

inline const char* dtypeName(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I32: return "I32";
    case DType::I8: return "I8";
  }
  return "?";
}

using Shape = std::vector<int64_t>;

inline int64_t shapeNumel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

inline std::string shapeString(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

// Backend memory. The backend that made it knows what data() points at.
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual void* data() const = 0;
  virtual size_t bytes() const = 0;
};

class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<Buffer> buf, DType dtype, Shape shape, size_t offset = 0)
      : buf_(std::move(buf)), dtype_(dtype), shape_(std::move(shape)), offset_(offset) {
    if (buf_ && offset_ + nbytes() > buf_->bytes()) {
      throw Error(ErrorCode::Internal, "tensor view " + shapeString(shape_) + " overruns its buffer");
    }
  }

  bool defined() const { return buf_ != nullptr; }
  explicit operator bool() const { return defined(); }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_.at(i); }
  size_t rank() const { return shape_.size(); }
  int64_t numel() const { return shapeNumel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtypeSize(dtype_); }
  // The last dimension, and the product of all the others (a matrix view).
  int64_t cols() const { return shape_.empty() ? 1 : shape_.back(); }
  int64_t rows() const { return cols() == 0 ? 0 : numel() / cols(); }

  // Raw pointer into backend memory (host pointer on CPU, device pointer on CUDA).
  void* raw() const { return static_cast<char*>(buf_->data()) + offset_; }
  template <typename T>
  T* ptr() const { return static_cast<T*>(raw()); }
  // Bytes from the buffer's start to raw(): a backend whose packed weights are not plain
  // row-major (CUDA W8A16) recovers a row slice's first row from it.
  size_t byteOffset() const { return offset_; }

  // Rows [begin, begin+count) along dimension 0, sharing the buffer.
  Tensor slice0(int64_t begin, int64_t count) const {
    if (shape_.empty() || begin < 0 || count < 0 || begin + count > shape_[0]) {
      throw Error(ErrorCode::Internal, "slice [" + std::to_string(begin) + ", +" + std::to_string(count) +
                                            ") out of range of " + shapeString(shape_));
    }
    Shape s = shape_;
    s[0] = count;
    size_t rowBytes = shape_[0] ? nbytes() / size_t(shape_[0]) : 0;
    Tensor out(buf_, dtype_, s, offset_ + size_t(begin) * rowBytes);
    if (scales_) out.setScales(scales_->slice0(begin, count), scaleGroup_);  // the same rows' scales
    return out;
  }

  // Same bytes, another shape of the same element count.
  Tensor view(Shape s) const {
    if (shapeNumel(s) != numel()) {
      throw Error(ErrorCode::Internal, "cannot view " + shapeString(shape_) + " as " + shapeString(s));
    }
    if (scales_ && (s.empty() || s[0] != shape_.at(0))) {
      throw Error(ErrorCode::Internal, "cannot view a quantized " + shapeString(shape_) + " as " + shapeString(s));
    }
    Tensor out(buf_, dtype_, std::move(s), offset_);
    if (scales_) out.setScales(*scales_, scaleGroup_);
    return out;
  }

  // ---- quantized weights (dtype I8) ---------------------------------------------------
  // fp32 scales [N, G] of an I8 matrix [N, K]: column k of row n uses scale (n, k / group),
  // G = ceil(K / group). Per output channel: group == K (G = 1); per group of 128: group 128.
  // slice0 slices the scales with the rows; undefined for other dtypes.
  void setScales(Tensor scales, int64_t group) {
    scales_ = std::make_shared<Tensor>(std::move(scales));
    scaleGroup_ = group;
  }
  const Tensor& scales() const {
    if (!scales_) throw Error(ErrorCode::Internal, "tensor " + shapeString(shape_) + " has no scales");
    return *scales_;
  }
  bool hasScales() const { return scales_ != nullptr; }
  int64_t scaleGroup() const { return scaleGroup_; }

 private:
  std::shared_ptr<Buffer> buf_;
  DType dtype_ = DType::F32;
  Shape shape_;
  size_t offset_ = 0;
  std::shared_ptr<Tensor> scales_;  // I8 only: [rows, groups] F32
  int64_t scaleGroup_ = 0;
};

}  // namespace ivl
