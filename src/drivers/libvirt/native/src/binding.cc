// ballast's Node-API binding over libvirt's C API: exactly what the libvirt driver needs.
//
// Threading (see docs/notes "libvirt from Node"): every call returns a Promise. Ordinary calls run on the libuv
// pool (AsyncWorker); a migration blocks for its whole run, so it gets its own std::thread instead of holding a
// pool thread. libvirt's events are dispatched by one process-wide thread running virEventRunDefaultImpl and
// delivered to JavaScript through a ThreadSafeFunction per connection.

#include <napi.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "jsvalue.h"

namespace {

// ------------------------------------------------------------------ errors

struct VirError {
  int code;
  int domain;
  int level;
  std::string message;
};

// Must run on the thread that made the failing call: libvirt's last error is thread-local.
[[noreturn]] void throwLast(const char* what) {
  virErrorPtr e = virGetLastError();
  VirError err{VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE, VIR_ERR_ERROR, std::string(what) + " failed without a libvirt error"};
  if (e != nullptr) {
    err.code = e->code;
    err.domain = e->domain;
    err.level = e->level;
    if (e->message != nullptr) err.message = e->message;
  }
  virResetLastError();
  throw err;
}

struct AddonData {
  Napi::FunctionReference connectionCtor;
  Napi::FunctionReference errorCtor;
};

Napi::Value makeError(Napi::Env env, const VirError& e) {
  auto* data = env.GetInstanceData<AddonData>();
  if (data != nullptr && !data->errorCtor.IsEmpty()) {
    return data->errorCtor.New({Napi::String::New(env, e.message), Napi::Number::New(env, e.code),
                                Napi::Number::New(env, e.domain), Napi::Number::New(env, e.level)});
  }
  Napi::Error err = Napi::Error::New(env, e.message);
  err.Set("code", Napi::Number::New(env, e.code));
  err.Set("domain", Napi::Number::New(env, e.domain));
  err.Set("level", Napi::Number::New(env, e.level));
  return err.Value();
}

// ------------------------------------------------------------------ event loop

std::once_flag eventLoopOnce;

// Keepalive and events need libvirt's event loop; one thread serves every connection of the process.
void startEventLoop() {
  std::call_once(eventLoopOnce, [] {
    virInitialize();
    // Errors are returned to JavaScript; libvirt's default handler would also print them to stderr.
    virSetErrorFunc(nullptr, [](void*, virErrorPtr) {});
    virEventRegisterDefaultImpl();
    std::thread([] {
      for (;;) {
        if (virEventRunDefaultImpl() < 0) virResetLastError();
      }
    }).detach();
  });
}

// ------------------------------------------------------------------ connection state

// Set by an env cleanup hook: once Node tears the environment down it finalizes every thread-safe function itself,
// and releasing one then (from a connection state freed by a finalizer) aborts the process at exit.
std::atomic<bool> envTeardown{false};

struct ConnState {
  std::mutex mu;
  virConnectPtr conn = nullptr;  // null once closed
  std::vector<int> eventIds;
  bool closeCallbackRegistered = false;
  // Guards the listener, so no event is posted to it after its release (events come on libvirt's loop thread).
  std::mutex listenerMu;
  bool hasListener = false;
  Napi::ThreadSafeFunction listener;

  void releaseListener() {
    std::lock_guard<std::mutex> lock(listenerMu);
    if (!hasListener) return;
    hasListener = false;
    if (!envTeardown) listener.Release();
  }

  ~ConnState() { releaseListener(); }
};
using StatePtr = std::shared_ptr<ConnState>;

// A reference to the connection held for one call, so close() never frees it under a running call.
class ConnRef {
 public:
  explicit ConnRef(ConnState& s) {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.conn == nullptr) throw VirError{VIR_ERR_INVALID_CONN, VIR_FROM_NONE, VIR_ERR_ERROR, "the connection is closed"};
    virConnectRef(s.conn);
    c_ = s.conn;
  }
  ~ConnRef() { virConnectClose(c_); }
  ConnRef(const ConnRef&) = delete;
  ConnRef& operator=(const ConnRef&) = delete;
  virConnectPtr get() const { return c_; }

 private:
  virConnectPtr c_;
};

class DomRef {
 public:
  explicit DomRef(virDomainPtr d) : d_(d) {}
  ~DomRef() {
    if (d_ != nullptr) virDomainFree(d_);
  }
  DomRef(const DomRef&) = delete;
  DomRef& operator=(const DomRef&) = delete;
  virDomainPtr get() const { return d_; }

 private:
  virDomainPtr d_;
};

bool looksLikeUuid(const std::string& key) {
  if (key.size() != 36) return false;
  for (size_t k = 0; k < key.size(); k++) {
    const char ch = key[k];
    if (k == 8 || k == 13 || k == 18 || k == 23) {
      if (ch != '-') return false;
    } else if (!isxdigit(static_cast<unsigned char>(ch))) {
      return false;
    }
  }
  return true;
}

// A domain by UUID or, failing that, by name.
virDomainPtr lookup(virConnectPtr c, const std::string& key) {
  if (looksLikeUuid(key)) {
    virDomainPtr d = virDomainLookupByUUIDString(c, key.c_str());
    if (d != nullptr) return d;
    virErrorPtr e = virGetLastError();
    if (e == nullptr || e->code != VIR_ERR_NO_DOMAIN) throwLast("virDomainLookupByUUIDString");
    virResetLastError();
  }
  virDomainPtr d = virDomainLookupByName(c, key.c_str());
  if (d == nullptr) throwLast("virDomainLookupByName");
  return d;
}

JV domainId(virDomainPtr d) {
  char uuid[VIR_UUID_STRING_BUFLEN] = {0};
  virDomainGetUUIDString(d, uuid);
  const char* name = virDomainGetName(d);
  return std::move(JV::obj().set("name", JV::str(name ? name : "")).set("uuid", JV::str(uuid)));
}

JV domainSummary(virDomainPtr d) {
  int state = 0;
  int reason = 0;
  if (virDomainGetState(d, &state, &reason, 0) < 0) throwLast("virDomainGetState");
  const int persistent = virDomainIsPersistent(d);
  if (persistent < 0) throwLast("virDomainIsPersistent");
  const unsigned int id = virDomainGetID(d);
  JV out = domainId(d);
  out.set("id", JV::num(id == static_cast<unsigned int>(-1) ? -1 : static_cast<double>(id)));
  out.set("state", JV::num(state)).set("reason", JV::num(reason));
  out.set("persistent", JV::boolean(persistent == 1)).set("active", JV::boolean(id != static_cast<unsigned int>(-1)));
  return out;
}

// Tears a connection down (close() or a dropped JS object): events first, so no callback outlives it.
void shutdown(ConnState& s);

void emit(ConnState& s, JV event) {
  std::lock_guard<std::mutex> lock(s.listenerMu);
  if (!s.hasListener) return;
  auto* payload = new JV(std::move(event));
  const napi_status st = s.listener.NonBlockingCall(payload, [](Napi::Env env, Napi::Function fn, JV* p) {
    std::unique_ptr<JV> owned(p);
    if (env == nullptr || fn.IsEmpty()) return;
    fn.Call({owned->toJs(env)});
  });
  if (st != napi_ok) delete payload;
}

ConnState& stateOf(void* opaque) { return **static_cast<StatePtr*>(opaque); }
void freeState(void* opaque) { delete static_cast<StatePtr*>(opaque); }

int onLifecycle(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) {
  JV ev = JV::obj();
  ev.set("type", JV::str("lifecycle")).set("domain", domainId(dom)).set("event", JV::num(event)).set("detail", JV::num(detail));
  emit(stateOf(opaque), std::move(ev));
  return 0;
}

void onJobCompleted(virConnectPtr, virDomainPtr dom, virTypedParameterPtr params, int nparams, void* opaque) {
  JV ev = JV::obj();
  ev.set("type", JV::str("job-completed")).set("domain", domainId(dom)).set("params", typedParams(params, nparams));
  emit(stateOf(opaque), std::move(ev));
}

void onMigrationIteration(virConnectPtr, virDomainPtr dom, int iteration, void* opaque) {
  JV ev = JV::obj();
  ev.set("type", JV::str("migration-iteration")).set("domain", domainId(dom)).set("iteration", JV::num(iteration));
  emit(stateOf(opaque), std::move(ev));
}

// The close callback's opaque is a plain pointer: it is unregistered (under libvirt's lock) before the state can go.
void onClose(virConnectPtr, int reason, void* opaque) {
  JV ev = JV::obj();
  ev.set("type", JV::str("close")).set("reason", JV::num(reason));
  emit(*static_cast<ConnState*>(opaque), std::move(ev));
}

void shutdown(ConnState& s) {
  virConnectPtr c = nullptr;
  std::vector<int> ids;
  bool closeCb = false;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    c = s.conn;
    s.conn = nullptr;
    ids.swap(s.eventIds);
    closeCb = s.closeCallbackRegistered;
    s.closeCallbackRegistered = false;
  }
  if (c == nullptr) return;
  // Failures here mean the peer is already gone; the local resources are released either way.
  for (int id : ids) virConnectDomainEventDeregisterAny(c, id);
  if (closeCb) virConnectUnregisterCloseCallback(c, onClose);
  virConnectClose(c);
  virResetLastError();
  s.releaseListener();
}

// ------------------------------------------------------------------ promise plumbing

using Work = std::function<JV()>;
using Finish = std::function<Napi::Value(Napi::Env, JV&)>;

// One libvirt call on the libuv pool, settling a promise with its result or a LibvirtError.
class Task : public Napi::AsyncWorker {
 public:
  Task(Napi::Env env, Work work, Finish finish)
      : Napi::AsyncWorker(env, "ballast-libvirt"),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        finish_(std::move(finish)) {}

  void Execute() override {
    try {
      out_ = work_();
    } catch (const VirError& e) {
      err_ = e;
      failed_ = true;
    } catch (const std::exception& e) {
      err_ = VirError{VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE, VIR_ERR_ERROR, e.what()};
      failed_ = true;
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (failed_) {
      deferred_.Reject(makeError(env, err_));
      return;
    }
    try {
      deferred_.Resolve(finish_ ? finish_(env, out_) : out_.toJs(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  Napi::Promise promise() const { return deferred_.Promise(); }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Finish finish_;
  JV out_;
  VirError err_{};
  bool failed_ = false;
};

Napi::Value queue(Napi::Env env, Work work, Finish finish = nullptr) {
  auto* task = new Task(env, std::move(work), std::move(finish));
  Napi::Promise p = task->promise();
  task->Queue();
  return p;
}

Napi::Value rejected(Napi::Env env, const Napi::Error& e) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Reject(e.Value());
  return d.Promise();
}

// Runs work on a thread of its own (for calls that block for minutes) and settles the promise on the main thread.
Napi::Value onOwnThread(Napi::Env env, Work work) {
  struct Outcome {
    JV value;
    VirError err{};
    bool failed = false;
  };
  auto* deferred = new Napi::Promise::Deferred(Napi::Promise::Deferred::New(env));
  Napi::Promise promise = deferred->Promise();
  auto tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "ballast-libvirt-migrate", 0, 1);
  std::thread([tsfn, deferred, work = std::move(work)]() mutable {
    auto* out = new Outcome();
    try {
      out->value = work();
    } catch (const VirError& e) {
      out->err = e;
      out->failed = true;
    } catch (const std::exception& e) {
      out->err = VirError{VIR_ERR_INTERNAL_ERROR, VIR_FROM_NONE, VIR_ERR_ERROR, e.what()};
      out->failed = true;
    }
    const napi_status st = tsfn.BlockingCall(out, [deferred](Napi::Env env, Napi::Function, Outcome* o) {
      std::unique_ptr<Outcome> owned(o);
      std::unique_ptr<Napi::Promise::Deferred> d(deferred);
      if (env == nullptr) return;
      if (owned->failed) d->Reject(makeError(env, owned->err));
      else d->Resolve(owned->value.toJs(env));
    });
    if (st != napi_ok) delete out;  // the environment is going away; nobody is left to settle
    tsfn.Release();
  }).detach();
  return promise;
}

// ------------------------------------------------------------------ argument helpers

std::string stringArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

double numberArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0) || v > 9007199254740991.0) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a non-negative safe integer");
  return v;
}

Napi::Object optionsArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return Napi::Object::New(info.Env());
  if (!info[i].IsObject()) throw Napi::TypeError::New(info.Env(), "options must be an object");
  return info[i].As<Napi::Object>();
}

bool boolOpt(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() && v.As<Napi::Boolean>().Value();
}

std::vector<std::string> stringList(Napi::Env env, const Napi::Value& v, const char* name) {
  std::vector<std::string> out;
  if (v.IsUndefined()) return out;
  if (!v.IsArray()) throw Napi::TypeError::New(env, std::string(name) + " must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value e = a.Get(k);
    if (!e.IsString()) throw Napi::TypeError::New(env, std::string(name) + " must be an array of strings");
    out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

struct Named {
  const char* name;
  unsigned int bit;
};

unsigned int bitsOf(Napi::Env env, const std::vector<std::string>& names, const Named* table, size_t n, const char* what) {
  unsigned int bits = 0;
  for (const auto& name : names) {
    bool found = false;
    for (size_t k = 0; k < n; k++) {
      if (name == table[k].name) {
        bits |= table[k].bit;
        found = true;
      }
    }
    if (!found) throw Napi::TypeError::New(env, "unknown " + std::string(what) + " '" + name + "'");
  }
  return bits;
}

const Named kMigrateFlags[] = {
    {"LIVE", VIR_MIGRATE_LIVE},
    {"PEER2PEER", VIR_MIGRATE_PEER2PEER},
    {"PERSIST_DEST", VIR_MIGRATE_PERSIST_DEST},
    {"UNDEFINE_SOURCE", VIR_MIGRATE_UNDEFINE_SOURCE},
    {"NON_SHARED_DISK", VIR_MIGRATE_NON_SHARED_DISK},
    {"AUTO_CONVERGE", VIR_MIGRATE_AUTO_CONVERGE},
    {"POSTCOPY", VIR_MIGRATE_POSTCOPY},
    {"OFFLINE", VIR_MIGRATE_OFFLINE},
};

const Named kStatsGroups[] = {
    {"state", VIR_DOMAIN_STATS_STATE},     {"cpu-total", VIR_DOMAIN_STATS_CPU_TOTAL},
    {"balloon", VIR_DOMAIN_STATS_BALLOON}, {"vcpu", VIR_DOMAIN_STATS_VCPU},
    {"block", VIR_DOMAIN_STATS_BLOCK},     {"dirtyrate", VIR_DOMAIN_STATS_DIRTYRATE},
};

const Named kStatsFilters[] = {
    {"active", VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE},
    {"inactive", VIR_CONNECT_GET_ALL_DOMAINS_STATS_INACTIVE},
    {"persistent", VIR_CONNECT_GET_ALL_DOMAINS_STATS_PERSISTENT},
    {"transient", VIR_CONNECT_GET_ALL_DOMAINS_STATS_TRANSIENT},
    {"running", VIR_CONNECT_GET_ALL_DOMAINS_STATS_RUNNING},
    {"paused", VIR_CONNECT_GET_ALL_DOMAINS_STATS_PAUSED},
    {"shutoff", VIR_CONNECT_GET_ALL_DOMAINS_STATS_SHUTOFF},
    {"nowait", VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT},
};

template <size_t N>
constexpr size_t countOf(const Named (&)[N]) {
  return N;
}

// Typed parameters owned for the duration of one call.
class Params {
 public:
  Params() = default;
  ~Params() { virTypedParamsFree(p_, n_); }
  Params(const Params&) = delete;
  Params& operator=(const Params&) = delete;
  void addString(const char* key, const std::string& v) {
    if (virTypedParamsAddString(&p_, &n_, &max_, key, v.c_str()) < 0) throwLast("virTypedParamsAddString");
  }
  void addULL(const char* key, unsigned long long v) {
    if (virTypedParamsAddULLong(&p_, &n_, &max_, key, v) < 0) throwLast("virTypedParamsAddULLong");
  }
  void addInt(const char* key, int v) {
    if (virTypedParamsAddInt(&p_, &n_, &max_, key, v) < 0) throwLast("virTypedParamsAddInt");
  }
  virTypedParameterPtr ptr() const { return p_; }
  int size() const { return n_; }

 private:
  virTypedParameterPtr p_ = nullptr;
  int n_ = 0;
  int max_ = 0;
};

// ------------------------------------------------------------------ Connection

class Connection : public Napi::ObjectWrap<Connection> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Connection",
                       {
                           InstanceMethod<&Connection::Close>("close"),
                           InstanceMethod<&Connection::IsAlive>("isAlive"),
                           InstanceMethod<&Connection::ListDomains>("listDomains"),
                           InstanceMethod<&Connection::LookupDomain>("lookupDomain"),
                           InstanceMethod<&Connection::DomainInfo>("getDomainInfo"),
                           InstanceMethod<&Connection::DomainXml>("getDomainXml"),
                           InstanceMethod<&Connection::BlockInfo>("getBlockInfo"),
                           InstanceMethod<&Connection::AllDomainStats>("getAllDomainStats"),
                           InstanceMethod<&Connection::NodeInfo>("getNodeInfo"),
                           InstanceMethod<&Connection::NodeCpuStats>("getNodeCpuStats"),
                           InstanceMethod<&Connection::NodeMemoryStats>("getNodeMemoryStats"),
                           InstanceMethod<&Connection::Migrate>("migrate"),
                           InstanceMethod<&Connection::SetMaxDowntime>("migrateSetMaxDowntime"),
                           InstanceMethod<&Connection::SetMaxSpeed>("migrateSetMaxSpeed"),
                           InstanceMethod<&Connection::StartPostCopy>("migrateStartPostCopy"),
                           InstanceMethod<&Connection::JobStats>("getJobStats"),
                           InstanceMethod<&Connection::AbortJob>("abortJob"),
                           InstanceMethod<&Connection::StartDirtyRateCalc>("startDirtyRateCalc"),
                           InstanceMethod<&Connection::Suspend>("suspend"),
                           InstanceMethod<&Connection::Resume>("resume"),
                           InstanceMethod<&Connection::Create>("create"),
                       });
  }

  explicit Connection(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Connection>(info) {
    if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "connections are made by open()");
    state_ = *info[0].As<Napi::External<StatePtr>>().Data();
  }

  // A dropped, unclosed connection is closed off the main thread (closing talks to the daemon).
  ~Connection() override {
    bool open = false;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      open = state_->conn != nullptr;
    }
    if (open) std::thread([s = state_] { shutdown(*s); }).detach();
  }

 private:
  StatePtr state_;

  // Runs fn(conn) on the pool; argument errors reject the promise instead of throwing synchronously.
  template <typename Prepare>
  Napi::Value call(const Napi::CallbackInfo& info, Prepare prepare) {
    try {
      return queue(info.Env(), prepare());
    } catch (const Napi::Error& e) {
      return rejected(info.Env(), e);
    }
  }

  // A call on one domain (by UUID or name).
  template <typename Fn>
  Napi::Value domainCall(const Napi::CallbackInfo& info, Fn fn) {
    return call(info, [&]() -> Work {
      std::string key = stringArg(info, 0, "domain");
      return [s = state_, key, fn]() -> JV {
        ConnRef c(*s);
        DomRef d(lookup(c.get(), key));
        return fn(d.get());
      };
    });
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    return queue(info.Env(), [s = state_]() -> JV {
      shutdown(*s);
      return JV();
    });
  }

  Napi::Value IsAlive(const Napi::CallbackInfo& info) {
    return queue(info.Env(), [s = state_]() -> JV {
      std::lock_guard<std::mutex> lock(s->mu);
      if (s->conn == nullptr) return JV::boolean(false);
      const int r = virConnectIsAlive(s->conn);
      virResetLastError();
      return JV::boolean(r == 1);
    });
  }

  Napi::Value ListDomains(const Napi::CallbackInfo& info) {
    return queue(info.Env(), [s = state_]() -> JV {
      ConnRef c(*s);
      virDomainPtr* doms = nullptr;
      const int n = virConnectListAllDomains(c.get(), &doms, 0);
      if (n < 0) throwLast("virConnectListAllDomains");
      std::vector<std::unique_ptr<DomRef>> owned;
      for (int k = 0; k < n; k++) owned.push_back(std::make_unique<DomRef>(doms[k]));
      free(doms);
      JV out = JV::arr();
      for (const auto& d : owned) {
        try {
          out.push(domainSummary(d->get()));
        } catch (const VirError& e) {
          // A domain undefined between the listing and the query is simply gone.
          if (e.code != VIR_ERR_NO_DOMAIN) throw;
        }
      }
      return out;
    });
  }

  Napi::Value LookupDomain(const Napi::CallbackInfo& info) {
    return domainCall(info, [](virDomainPtr d) { return domainSummary(d); });
  }

  Napi::Value DomainInfo(const Napi::CallbackInfo& info) {
    return domainCall(info, [](virDomainPtr d) {
      virDomainInfo di;
      if (virDomainGetInfo(d, &di) < 0) throwLast("virDomainGetInfo");
      JV out = JV::obj();
      out.set("state", JV::num(di.state)).set("maxMemKiB", JV::num(static_cast<double>(di.maxMem)));
      out.set("memoryKiB", JV::num(static_cast<double>(di.memory))).set("vcpus", JV::num(di.nrVirtCpu));
      out.set("cpuTimeNs", JV::u64(di.cpuTime));
      return out;
    });
  }

  Napi::Value DomainXml(const Napi::CallbackInfo& info) {
    unsigned int flags = 0;
    try {
      Napi::Object o = optionsArg(info, 1);
      if (boolOpt(o, "inactive")) flags |= VIR_DOMAIN_XML_INACTIVE;
      if (boolOpt(o, "migratable")) flags |= VIR_DOMAIN_XML_MIGRATABLE;
    } catch (const Napi::Error& e) {
      return rejected(info.Env(), e);
    }
    return domainCall(info, [flags](virDomainPtr d) {
      char* xml = virDomainGetXMLDesc(d, flags);
      if (xml == nullptr) throwLast("virDomainGetXMLDesc");
      JV out = JV::str(xml);
      free(xml);
      return out;
    });
  }

  Napi::Value BlockInfo(const Napi::CallbackInfo& info) {
    std::string disk;
    try {
      disk = stringArg(info, 1, "disk");
    } catch (const Napi::Error& e) {
      return rejected(info.Env(), e);
    }
    return domainCall(info, [disk](virDomainPtr d) {
      virDomainBlockInfo bi;
      if (virDomainGetBlockInfo(d, disk.c_str(), &bi, 0) < 0) throwLast("virDomainGetBlockInfo");
      JV out = JV::obj();
      out.set("capacity", JV::u64(bi.capacity)).set("allocation", JV::u64(bi.allocation)).set("physical", JV::u64(bi.physical));
      return out;
    });
  }

  Napi::Value AllDomainStats(const Napi::CallbackInfo& info) {
    return call(info, [&]() -> Work {
      Napi::Env env = info.Env();
      const unsigned int groups = bitsOf(env, stringList(env, info[0], "groups"), kStatsGroups, countOf(kStatsGroups), "stats group");
      Napi::Object o = optionsArg(info, 1);
      const unsigned int flags = bitsOf(env, stringList(env, o.Get("filters"), "filters"), kStatsFilters, countOf(kStatsFilters), "stats filter");
      return [s = state_, groups, flags]() -> JV {
        ConnRef c(*s);
        virDomainStatsRecordPtr* recs = nullptr;
        const int n = virConnectGetAllDomainStats(c.get(), groups, &recs, flags);
        if (n < 0) throwLast("virConnectGetAllDomainStats");
        JV out = JV::arr();
        for (int k = 0; k < n; k++) {
          JV rec = JV::obj();
          rec.set("domain", domainId(recs[k]->dom)).set("params", typedParams(recs[k]->params, recs[k]->nparams));
          out.push(std::move(rec));
        }
        virDomainStatsRecordListFree(recs);
        return out;
      };
    });
  }

  Napi::Value NodeInfo(const Napi::CallbackInfo& info) {
    return queue(info.Env(), [s = state_]() -> JV {
      ConnRef c(*s);
      virNodeInfo ni;
      if (virNodeGetInfo(c.get(), &ni) < 0) throwLast("virNodeGetInfo");
      JV out = JV::obj();
      out.set("model", JV::str(ni.model)).set("memoryKiB", JV::num(static_cast<double>(ni.memory))).set("cpus", JV::num(ni.cpus));
      out.set("mhz", JV::num(ni.mhz)).set("nodes", JV::num(ni.nodes)).set("sockets", JV::num(ni.sockets));
      out.set("cores", JV::num(ni.cores)).set("threads", JV::num(ni.threads));
      return out;
    });
  }

  Napi::Value NodeCpuStats(const Napi::CallbackInfo& info) {
    return queue(info.Env(), [s = state_]() -> JV {
      ConnRef c(*s);
      int n = 0;
      if (virNodeGetCPUStats(c.get(), VIR_NODE_CPU_STATS_ALL_CPUS, nullptr, &n, 0) < 0) throwLast("virNodeGetCPUStats");
      std::vector<virNodeCPUStats> stats(static_cast<size_t>(n));
      if (n > 0 && virNodeGetCPUStats(c.get(), VIR_NODE_CPU_STATS_ALL_CPUS, stats.data(), &n, 0) < 0) throwLast("virNodeGetCPUStats");
      JV out = JV::obj();
      for (int k = 0; k < n; k++) out.set(stats[static_cast<size_t>(k)].field, JV::u64(stats[static_cast<size_t>(k)].value));
      return out;
    });
  }

  Napi::Value NodeMemoryStats(const Napi::CallbackInfo& info) {
    return queue(info.Env(), [s = state_]() -> JV {
      ConnRef c(*s);
      int n = 0;
      if (virNodeGetMemoryStats(c.get(), VIR_NODE_MEMORY_STATS_ALL_CELLS, nullptr, &n, 0) < 0) throwLast("virNodeGetMemoryStats");
      std::vector<virNodeMemoryStats> stats(static_cast<size_t>(n));
      if (n > 0 && virNodeGetMemoryStats(c.get(), VIR_NODE_MEMORY_STATS_ALL_CELLS, stats.data(), &n, 0) < 0) {
        throwLast("virNodeGetMemoryStats");
      }
      JV out = JV::obj();
      for (int k = 0; k < n; k++) out.set(stats[static_cast<size_t>(k)].field, JV::u64(stats[static_cast<size_t>(k)].value));
      return out;
    });
  }

  // migrate(domain, destUri, {flags, bandwidthMiBps, migrateUri, destName, migrateDisks,
  //   autoConvergeInitial, autoConvergeIncrement}) — virDomainMigrateToURI3 on a thread of its own.
  Napi::Value Migrate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    try {
      const std::string key = stringArg(info, 0, "domain");
      const std::string dest = stringArg(info, 1, "destUri");
      Napi::Object o = optionsArg(info, 2);
      const unsigned int flags = bitsOf(env, stringList(env, o.Get("flags"), "flags"), kMigrateFlags, countOf(kMigrateFlags), "migration flag");
      struct Spec {
        unsigned long long bandwidth = 0;
        bool hasBandwidth = false;
        std::string migrateUri, destName;
        std::vector<std::string> disks;
        int acInitial = -1, acIncrement = -1;
      } spec;
      auto num = [&](const char* k) -> double {
        Napi::Value v = o.Get(k);
        if (v.IsUndefined()) return -1;
        if (!v.IsNumber() || !(v.As<Napi::Number>().DoubleValue() >= 0)) throw Napi::TypeError::New(env, std::string(k) + " must be a non-negative number");
        return v.As<Napi::Number>().DoubleValue();
      };
      auto str = [&](const char* k) -> std::string {
        Napi::Value v = o.Get(k);
        if (v.IsUndefined()) return "";
        if (!v.IsString()) throw Napi::TypeError::New(env, std::string(k) + " must be a string");
        return v.As<Napi::String>().Utf8Value();
      };
      if (const double bw = num("bandwidthMiBps"); bw >= 0) {
        spec.bandwidth = static_cast<unsigned long long>(bw);
        spec.hasBandwidth = true;
      }
      spec.migrateUri = str("migrateUri");
      spec.destName = str("destName");
      spec.disks = stringList(env, o.Get("migrateDisks"), "migrateDisks");
      spec.acInitial = static_cast<int>(num("autoConvergeInitial"));
      spec.acIncrement = static_cast<int>(num("autoConvergeIncrement"));
      return onOwnThread(env, [s = state_, key, dest, flags, spec]() -> JV {
        Params params;
        if (spec.hasBandwidth) params.addULL(VIR_MIGRATE_PARAM_BANDWIDTH, spec.bandwidth);
        if (!spec.migrateUri.empty()) params.addString(VIR_MIGRATE_PARAM_URI, spec.migrateUri);
        if (!spec.destName.empty()) params.addString(VIR_MIGRATE_PARAM_DEST_NAME, spec.destName);
        for (const auto& disk : spec.disks) params.addString(VIR_MIGRATE_PARAM_MIGRATE_DISKS, disk);
        if (spec.acInitial >= 0) params.addInt(VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL, spec.acInitial);
        if (spec.acIncrement >= 0) params.addInt(VIR_MIGRATE_PARAM_AUTO_CONVERGE_INCREMENT, spec.acIncrement);
        ConnRef c(*s);
        DomRef d(lookup(c.get(), key));
        if (virDomainMigrateToURI3(d.get(), dest.c_str(), params.ptr(), static_cast<unsigned int>(params.size()), flags) < 0) {
          throwLast("virDomainMigrateToURI3");
        }
        return JV();
      });
    } catch (const Napi::Error& e) {
      return rejected(env, e);
    }
  }

  Napi::Value SetMaxDowntime(const Napi::CallbackInfo& info) {
    unsigned long long ms = 0;
    try {
      ms = static_cast<unsigned long long>(numberArg(info, 1, "downtimeMs"));
    } catch (const Napi::Error& e) {
      return rejected(info.Env(), e);
    }
    return domainCall(info, [ms](virDomainPtr d) {
      if (virDomainMigrateSetMaxDowntime(d, ms, 0) < 0) throwLast("virDomainMigrateSetMaxDowntime");
      return JV();
    });
  }

  Napi::Value SetMaxSpeed(const Napi::CallbackInfo& info) {
    unsigned long mibps = 0;
    try {
      mibps = static_cast<unsigned long>(numberArg(info, 1, "bandwidthMiBps"));
    } catch (const Napi::Error& e) {
      return rejected(info.Env(), e);
    }
    return domainCall(info, [mibps](virDomainPtr d) {
      if (virDomainMigrateSetMaxSpeed(d, mibps, 0) < 0) throwLast("virDomainMigrateSetMaxSpeed");
      return JV();
    });
  }

  Napi::Value StartPostCopy(const Napi::CallbackInfo& info) {
    return domainCall(info, [](virDomainPtr d) {
      if (virDomainMigrateStartPostCopy(d, 0) < 0) throwLast("virDomainMigrateStartPostCopy");
      return JV();
    });
  }

  Napi::Value JobStats(const Napi::CallbackInfo& info) {
    unsigned int flags = 0;
    try {
      Napi::Object o = optionsArg(info, 1);
      if (boolOpt(o, "completed")) flags |= VIR_DOMAIN_JOB_STATS_COMPLETED;
      if (boolOpt(o, "keepCompleted")) flags |= VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED;
    } catch (const Napi::Error& e) {
      return rejected(info.Env(), e);
    }
    return domainCall(info, [flags](virDomainPtr d) {
      int type = 0;
      virTypedParameterPtr params = nullptr;
      int n = 0;
      if (virDomainGetJobStats(d, &type, &params, &n, flags) < 0) throwLast("virDomainGetJobStats");
      JV out = JV::obj();
      out.set("type", JV::num(type)).set("params", typedParams(params, n));
      virTypedParamsFree(params, n);
      return out;
    });
  }

  Napi::Value AbortJob(const Napi::CallbackInfo& info) {
    return domainCall(info, [](virDomainPtr d) {
      if (virDomainAbortJob(d) < 0) throwLast("virDomainAbortJob");
      return JV();
    });
  }

  Napi::Value StartDirtyRateCalc(const Napi::CallbackInfo& info) {
    int seconds = 0;
    try {
      seconds = static_cast<int>(numberArg(info, 1, "seconds"));
    } catch (const Napi::Error& e) {
      return rejected(info.Env(), e);
    }
    return domainCall(info, [seconds](virDomainPtr d) {
      if (virDomainStartDirtyRateCalc(d, seconds, 0) < 0) throwLast("virDomainStartDirtyRateCalc");
      return JV();
    });
  }

  Napi::Value Suspend(const Napi::CallbackInfo& info) {
    return domainCall(info, [](virDomainPtr d) {
      if (virDomainSuspend(d) < 0) throwLast("virDomainSuspend");
      return JV();
    });
  }

  Napi::Value Resume(const Napi::CallbackInfo& info) {
    return domainCall(info, [](virDomainPtr d) {
      if (virDomainResume(d) < 0) throwLast("virDomainResume");
      return JV();
    });
  }

  Napi::Value Create(const Napi::CallbackInfo& info) {
    return domainCall(info, [](virDomainPtr d) {
      if (virDomainCreate(d) < 0) throwLast("virDomainCreate");
      return JV();
    });
  }
};

// open(uri, {readOnly, keepaliveIntervalSec, keepaliveCount}, onEvent?) → Promise<Connection>
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    const std::string uri = stringArg(info, 0, "uri");
    Napi::Object o = optionsArg(info, 1);
    const bool readOnly = boolOpt(o, "readOnly");
    int interval = 5;
    unsigned int count = 3;
    if (Napi::Value v = o.Get("keepaliveIntervalSec"); v.IsNumber()) interval = v.As<Napi::Number>().Int32Value();
    if (Napi::Value v = o.Get("keepaliveCount"); v.IsNumber()) count = v.As<Napi::Number>().Uint32Value();
    auto state = std::make_shared<ConnState>();
    if (info.Length() > 2 && info[2].IsFunction()) {
      state->listener = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "ballast-libvirt-events", 0, 1);
      state->listener.Unref(env);  // events alone do not keep the process alive
      state->hasListener = true;
    } else if (info.Length() > 2 && !info[2].IsUndefined()) {
      throw Napi::TypeError::New(env, "onEvent must be a function");
    }
    return queue(
        env,
        [state, uri, readOnly, interval, count]() -> JV {
          virConnectPtr c = readOnly ? virConnectOpenReadOnly(uri.c_str()) : virConnectOpen(uri.c_str());
          if (c == nullptr) throwLast("virConnectOpen");
          {
            std::lock_guard<std::mutex> lock(state->mu);
            state->conn = c;
          }
          try {
            // In-process drivers (test:///, and local ones without a daemon) have no keepalive: NO_SUPPORT is fine.
            if (interval > 0 && virConnectSetKeepAlive(c, interval, count) < 0) {
              virErrorPtr e = virGetLastError();
              if (e == nullptr || e->code != VIR_ERR_NO_SUPPORT) throwLast("virConnectSetKeepAlive");
              virResetLastError();
            }
            if (virConnectRegisterCloseCallback(c, onClose, state.get(), nullptr) < 0) throwLast("virConnectRegisterCloseCallback");
            {
              std::lock_guard<std::mutex> lock(state->mu);
              state->closeCallbackRegistered = true;
            }
            if (state->hasListener) {
              struct Ev {
                int id;
                virConnectDomainEventGenericCallback cb;
              };
              const Ev events[] = {
                  {VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(onLifecycle)},
                  {VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, VIR_DOMAIN_EVENT_CALLBACK(onJobCompleted)},
                  {VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION, VIR_DOMAIN_EVENT_CALLBACK(onMigrationIteration)},
              };
              for (const Ev& ev : events) {
                const int id = virConnectDomainEventRegisterAny(c, nullptr, ev.id, ev.cb, new StatePtr(state), freeState);
                if (id < 0) throwLast("virConnectDomainEventRegisterAny");
                std::lock_guard<std::mutex> lock(state->mu);
                state->eventIds.push_back(id);
              }
            }
          } catch (const VirError&) {
            shutdown(*state);
            throw;
          }
          return JV();
        },
        [state](Napi::Env e, JV&) -> Napi::Value {
          auto* data = e.GetInstanceData<AddonData>();
          return data->connectionCtor.New({Napi::External<StatePtr>::New(e, new StatePtr(state), [](Napi::Env, StatePtr* p) { delete p; })});
        });
  } catch (const Napi::Error& e) {
    return rejected(env, e);
  }
}

// setErrorClass(ctor): failures are constructed as new ctor(message, code, domain, level).
Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "setErrorClass needs a constructor");
  info.Env().GetInstanceData<AddonData>()->errorCtor = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  startEventLoop();
  napi_add_env_cleanup_hook(env, [](void*) { envTeardown = true; }, nullptr);
  auto* data = new AddonData();
  data->connectionCtor = Napi::Persistent(Connection::Define(env));
  env.SetInstanceData(data);
  unsigned long version = 0;
  virGetVersion(&version, nullptr, nullptr);
  exports.Set("libvirtVersion", Napi::Number::New(env, static_cast<double>(version)));
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  return exports;
}

}  // namespace

NODE_API_MODULE(ballast_libvirt, Init)
