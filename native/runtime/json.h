// A small, strict JSON reader for the files the engine parses itself: safetensors
// headers and model.safetensors.index.json. RFC 8259 grammar, UTF-8 strings with
// \uXXXX escapes (surrogate pairs joined), a nesting limit, and integers kept
// exactly (int64) next to their double value so byte offsets never round.
// Parse errors throw JsonError with the byte offset; callers rethrow them as
// ivl::Error naming the file.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ivl::json {

class JsonError : public std::runtime_error {
 public:
  JsonError(const std::string& what, size_t offset)
      : std::runtime_error(what + " at byte " + std::to_string(offset)), offset_(offset) {}
  size_t offset() const { return offset_; }

 private:
  size_t offset_;
};

class Value {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Type type() const { return type_; }
  bool isNull() const { return type_ == Type::Null; }
  bool isBool() const { return type_ == Type::Bool; }
  bool isNumber() const { return type_ == Type::Number; }
  bool isString() const { return type_ == Type::String; }
  bool isArray() const { return type_ == Type::Array; }
  bool isObject() const { return type_ == Type::Object; }
  // A number written without fraction or exponent that fits in int64.
  bool isInteger() const { return type_ == Type::Number && isInt_; }

  bool asBool() const { return bool_; }
  double asDouble() const { return number_; }
  int64_t asInt() const { return int_; }
  const std::string& asString() const { return string_; }
  const std::vector<Value>& asArray() const { return array_; }
  // Members in file order; keys are unique (duplicates are a parse error).
  const std::vector<std::pair<std::string, Value>>& members() const { return members_; }

  // Object lookup; nullptr when absent or when this is not an object.
  const Value* find(std::string_view key) const;

  static const char* typeName(Type t);
  const char* typeName() const { return typeName(type_); }

 private:
  friend class Parser;
  Type type_ = Type::Null;
  bool bool_ = false;
  bool isInt_ = false;
  double number_ = 0;
  int64_t int_ = 0;
  std::string string_;
  std::vector<Value> array_;
  std::vector<std::pair<std::string, Value>> members_;
  std::map<std::string, size_t, std::less<>> index_;  // key -> position in members_
};

// Parses exactly one JSON value spanning all of text (whitespace around it allowed).
Value parse(std::string_view text);

}  // namespace ivl::json
