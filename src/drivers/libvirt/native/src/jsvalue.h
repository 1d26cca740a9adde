// A JavaScript value built off the main thread and converted on it: libvirt calls run on worker threads,
// which must not touch napi_env, so results are collected here first.
#pragma once

#include <napi.h>
#include <libvirt/libvirt.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

struct JV {
  enum class T { Undefined, Null, Bool, Num, I64, U64, Str, Arr, Obj };
  T t = T::Undefined;
  bool b = false;
  double n = 0;
  int64_t i = 0;
  uint64_t u = 0;
  std::string s;
  std::vector<JV> a;
  std::vector<std::pair<std::string, JV>> o;

  static JV null() { JV v; v.t = T::Null; return v; }
  static JV boolean(bool x) { JV v; v.t = T::Bool; v.b = x; return v; }
  static JV num(double x) { JV v; v.t = T::Num; v.n = x; return v; }
  static JV i64(int64_t x) { JV v; v.t = T::I64; v.i = x; return v; }
  static JV u64(uint64_t x) { JV v; v.t = T::U64; v.u = x; return v; }
  static JV str(std::string x) { JV v; v.t = T::Str; v.s = std::move(x); return v; }
  static JV arr() { JV v; v.t = T::Arr; return v; }
  static JV obj() { JV v; v.t = T::Obj; return v; }

  JV& set(std::string key, JV value) {
    o.emplace_back(std::move(key), std::move(value));
    return *this;
  }
  void push(JV value) { a.push_back(std::move(value)); }

  Napi::Value toJs(Napi::Env env) const {
    switch (t) {
      case T::Undefined: return env.Undefined();
      case T::Null: return env.Null();
      case T::Bool: return Napi::Boolean::New(env, b);
      case T::Num: return Napi::Number::New(env, n);
      case T::I64: return Napi::BigInt::New(env, i);
      case T::U64: return Napi::BigInt::New(env, u);
      case T::Str: return Napi::String::New(env, s);
      case T::Arr: {
        Napi::Array out = Napi::Array::New(env, a.size());
        for (size_t k = 0; k < a.size(); k++) out.Set(static_cast<uint32_t>(k), a[k].toJs(env));
        return out;
      }
      case T::Obj: {
        Napi::Object out = Napi::Object::New(env);
        for (const auto& [key, value] : o) out.Set(key, value.toJs(env));
        return out;
      }
    }
    return env.Undefined();
  }
};

// libvirt typed parameters as a plain object; 64-bit integers become BigInt so counters stay exact.
inline JV typedParams(const virTypedParameter* params, int n) {
  JV out = JV::obj();
  for (int k = 0; k < n; k++) {
    const virTypedParameter& p = params[k];
    switch (p.type) {
      case VIR_TYPED_PARAM_INT: out.set(p.field, JV::num(p.value.i)); break;
      case VIR_TYPED_PARAM_UINT: out.set(p.field, JV::num(p.value.ui)); break;
      case VIR_TYPED_PARAM_LLONG: out.set(p.field, JV::i64(p.value.l)); break;
      case VIR_TYPED_PARAM_ULLONG: out.set(p.field, JV::u64(p.value.ul)); break;
      case VIR_TYPED_PARAM_DOUBLE: out.set(p.field, JV::num(p.value.d)); break;
      case VIR_TYPED_PARAM_BOOLEAN: out.set(p.field, JV::boolean(p.value.b != 0)); break;
      case VIR_TYPED_PARAM_STRING: out.set(p.field, JV::str(p.value.s ? p.value.s : "")); break;
      default: break;
    }
  }
  return out;
}
