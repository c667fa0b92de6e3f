// A small stand-in for libFuzzer's main(), for machines with g++ but no clang:
// it runs a target's LLVMFuzzerTestOneInput over the seed corpus, then mutates
// for a bounded time. Coverage-guided when the target code is compiled with
// -fsanitize-coverage=trace-pc (g++ and clang both have it): an input that reaches
// a basic block no earlier input reached joins the in-memory corpus. Not a
// replacement for libFuzzer (no comparison tracing, no dictionary learning), just
// enough that CI without clang still fuzzes with ASan + UBSan.
//
//   driver [-seconds=N] [-max_len=N] [-seed=N] [-timeout=S] [-artifact_prefix=P] DIR|FILE...
//
// Exit status: 0 when the budget ran out with no finding. A crash (sanitizer
// report, signal, uncaught exception) or an input slower than -timeout seconds
// writes the input to <artifact_prefix>crash-<hash> / timeout-<hash> and exits
// non-zero (sanitizers exit 1, a timeout 70).
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <unordered_set>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);
extern "C" void __sanitizer_set_death_callback(void (*callback)(void));

// ---- coverage: called at every basic block of code built with trace-pc ---------
namespace {
constexpr size_t kPcBits = 1 << 20;  // a bitmap of hashed return addresses
uint8_t gPcMap[kPcBits / 8];
size_t gNewPcs = 0;  // blocks first reached by the current input
bool gTracing = false;
}  // namespace

extern "C" __attribute__((no_sanitize_address, no_sanitize_undefined)) void __sanitizer_cov_trace_pc() {
  if (!gTracing) return;
  uintptr_t pc = reinterpret_cast<uintptr_t>(__builtin_return_address(0));
  size_t h = (pc ^ (pc >> 17)) & (kPcBits - 1);
  uint8_t bit = uint8_t(1u << (h & 7));
  if (!(gPcMap[h >> 3] & bit)) {
    gPcMap[h >> 3] |= bit;
    ++gNewPcs;
  }
}

namespace {

using Bytes = std::vector<uint8_t>;

// The input being run, for the crash handlers (which may only call write()).
const uint8_t* gCurData = nullptr;
size_t gCurSize = 0;
std::string gPrefix = "./";
volatile sig_atomic_t gInHandler = 0;

uint64_t fnv1a(const uint8_t* d, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ d[i]) * 1099511628211ull;
  return h;
}

// Writes the current input as <prefix><kind>-<hash>; async-signal-safe.
void dumpCurrent(const char* kind) {
  if (!gCurData && gCurSize) return;
  char path[4096];
  char hex[17];
  uint64_t h = fnv1a(gCurData, gCurSize);
  for (int i = 15; i >= 0; --i, h >>= 4) hex[i] = "0123456789abcdef"[h & 15];
  hex[16] = 0;
  size_t n = 0;
  auto put = [&](const char* s) {
    while (*s && n + 1 < sizeof path) path[n++] = *s++;
  };
  put(gPrefix.c_str());
  put(kind);
  put("-");
  put(hex);
  path[n] = 0;
  int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    size_t off = 0;
    while (off < gCurSize) {
      ssize_t w = ::write(fd, gCurData + off, gCurSize - off);
      if (w <= 0) break;
      off += size_t(w);
    }
    ::close(fd);
  }
  const char* msg1 = "\n==driver== input written to ";
  (void)!::write(2, msg1, strlen(msg1));
  (void)!::write(2, path, n);
  (void)!::write(2, "\n", 1);
}

void onDeath() {
  if (gInHandler) return;
  gInHandler = 1;
  dumpCurrent("crash");
}

void onSignal(int sig) {
  if (!gInHandler) {
    gInHandler = 1;
    if (sig == SIGALRM) {
      const char* m = "\n==driver== ERROR: an input ran past the timeout (hang)\n";
      (void)!::write(2, m, strlen(m));
      dumpCurrent("timeout");
      _exit(70);
    }
    const char* m = "\n==driver== ERROR: deadly signal\n";
    (void)!::write(2, m, strlen(m));
    dumpCurrent("crash");
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

// xoshiro-style small PRNG (splitmix64): reproducible runs from -seed.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n ? size_t(next() % n) : 0; }
};

// Tokens that matter to the JSON-based formats the targets read.
const char* const kDict[] = {
    "{",     "}",     "[",      "]",     "\"",   ":",     ",",     "\\",     "\\u",     "\\ud800",
    "\\udc00", "null", "true",  "false", "-",    "0",     "1e999", "-0",     "1.5",     "9223372036854775807",
    "9223372036854775808", "18446744073709551615", "-9223372036854775808", "4611686018427387904",
    "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"BF16\"", "\"F32\"", "\"I64\"", "\"F8_E4M3\"",
    "\"__metadata__\"", "\"weight_map\"", "\"a.safetensors\"", "\"../evil.safetensors\"", "\"\"", "[]", "{}", "[0,0]",
    "\xff", "\x00", "\xc3\xa9", "\xed\xa0\x80", "\xf4\x90\x80\x80",
};

void mutate(Bytes& b, Rng& r, const std::vector<Bytes>& corpus, size_t maxLen) {
  const int rounds = 1 + int(r.below(6));
  for (int k = 0; k < rounds; ++k) {
    switch (r.below(10)) {
      case 0:  // flip a bit
        if (!b.empty()) b[r.below(b.size())] ^= uint8_t(1u << r.below(8));
        break;
      case 1:  // set a byte
        if (!b.empty()) b[r.below(b.size())] = uint8_t(r.next());
        break;
      case 2: {  // delete a run
        if (b.empty()) break;
        size_t at = r.below(b.size()), n = 1 + r.below(std::min<size_t>(b.size() - at, 16));
        b.erase(b.begin() + long(at), b.begin() + long(at + n));
        break;
      }
      case 3: {  // insert random bytes
        size_t at = r.below(b.size() + 1), n = 1 + r.below(8);
        for (size_t i = 0; i < n; ++i) b.insert(b.begin() + long(at), uint8_t(r.next()));
        break;
      }
      case 4: {  // duplicate a chunk somewhere
        if (b.empty()) break;
        size_t from = r.below(b.size()), n = 1 + r.below(std::min<size_t>(b.size() - from, 64));
        Bytes chunk(b.begin() + long(from), b.begin() + long(from + n));
        b.insert(b.begin() + long(r.below(b.size() + 1)), chunk.begin(), chunk.end());
        break;
      }
      case 5:
      case 6: {  // insert or overwrite with a dictionary token
        const char* t = kDict[r.below(sizeof kDict / sizeof kDict[0])];
        size_t n = strlen(t) ? strlen(t) : 1;
        size_t at = r.below(b.size() + 1);
        if (r.below(2) && at + n <= b.size()) {
          memcpy(b.data() + at, t, n);
        } else {
          b.insert(b.begin() + long(at), t, t + n);
        }
        break;
      }
      case 7: {  // a digit run changed (numbers are what the headers are made of)
        for (int tries = 0; tries < 8 && !b.empty(); ++tries) {
          size_t at = r.below(b.size());
          if (b[at] >= '0' && b[at] <= '9') {
            b[at] = uint8_t('0' + r.below(10));
            if (r.below(3) == 0) b.insert(b.begin() + long(at), uint8_t('0' + r.below(10)));
            break;
          }
        }
        break;
      }
      case 8: {  // splice with another corpus entry
        const Bytes& o = corpus[r.below(corpus.size())];
        if (o.empty()) break;
        size_t cut = r.below(b.size() + 1), from = r.below(o.size());
        b.resize(cut);
        b.insert(b.end(), o.begin() + long(from), o.end());
        break;
      }
      case 9: {  // an interesting little-endian integer (lengths and counts)
        static const uint64_t kVals[] = {0, 1, 2, 7, 8, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x7fffffff, 0x80000000,
                                         0xffffffff, 0x7fffffffffffffffull, 0x8000000000000000ull, ~0ull};
        if (b.size() < 8) break;
        uint64_t v = kVals[r.below(sizeof kVals / sizeof kVals[0])];
        size_t at = r.below(b.size() - 7);
        size_t w = size_t(1) << r.below(4);  // 1, 2, 4 or 8 bytes
        for (size_t i = 0; i < w; ++i) b[at + i] = uint8_t(v >> (8 * i));
        break;
      }
    }
  }
  if (b.size() > maxLen) b.resize(maxLen);
}

bool readFile(const std::string& path, Bytes& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

void collect(const std::string& path, std::vector<std::string>& files) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;
  if (S_ISREG(st.st_mode)) {
    files.push_back(path);
    return;
  }
  if (!S_ISDIR(st.st_mode)) return;
  DIR* d = ::opendir(path.c_str());
  if (!d) return;
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    names.push_back(path + "/" + e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) collect(n, files);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 10;
  size_t maxLen = 64 * 1024;
  uint64_t seed = 1;
  unsigned timeoutSec = 5;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* key) -> const char* {
      size_t n = strlen(key);
      return a.compare(0, n, key) == 0 ? a.c_str() + n : nullptr;
    };
    if (const char* v = val("-seconds=")) seconds = atof(v);
    else if (const char* v = val("-max_total_time=")) seconds = atof(v);
    else if (const char* v = val("-max_len=")) maxLen = size_t(atoll(v));
    else if (const char* v = val("-seed=")) seed = uint64_t(atoll(v));
    else if (const char* v = val("-timeout=")) timeoutSec = unsigned(atoi(v));
    else if (const char* v = val("-artifact_prefix=")) gPrefix = v;
    else if (a.size() > 1 && a[0] == '-') fprintf(stderr, "driver: ignoring flag %s\n", a.c_str());
    else paths.push_back(a);
  }
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  __sanitizer_set_death_callback(onDeath);
  signal(SIGALRM, onSignal);
  signal(SIGSEGV, onSignal);
  signal(SIGBUS, onSignal);
  signal(SIGABRT, onSignal);
  signal(SIGFPE, onSignal);
  signal(SIGILL, onSignal);

  auto runOne = [&](const Bytes& in) -> size_t {
    // A private copy of exactly size bytes: ASan sees any read past the end.
    uint8_t* copy = static_cast<uint8_t*>(malloc(in.size() ? in.size() : 1));
    if (!in.empty()) memcpy(copy, in.data(), in.size());
    gCurData = copy;
    gCurSize = in.size();
    gNewPcs = 0;
    gTracing = true;
    itimerval t {};
    t.it_value.tv_sec = long(timeoutSec);
    setitimer(ITIMER_REAL, &t, nullptr);
    LLVMFuzzerTestOneInput(copy, in.size());
    itimerval off {};
    setitimer(ITIMER_REAL, &off, nullptr);
    gTracing = false;
    gCurData = nullptr;
    gCurSize = 0;
    free(copy);
    return gNewPcs;
  };

  std::vector<std::string> files;
  for (const auto& p : paths) collect(p, files);
  std::vector<Bytes> corpus;
  for (const auto& f : files) {
    Bytes b;
    if (!readFile(f, b)) continue;
    if (b.size() > maxLen) b.resize(maxLen);
    runOne(b);
    corpus.push_back(std::move(b));
  }
  if (corpus.empty()) corpus.push_back(Bytes{});
  fprintf(stderr, "driver: %zu seed inputs run\n", corpus.size());

  Rng rng{seed};
  const auto start = std::chrono::steady_clock::now();
  uint64_t execs = 0;
  size_t added = 0;
  double nextReport = 5;
  for (;;) {
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed >= seconds) break;
    if (elapsed >= nextReport) {
      fprintf(stderr, "driver: #%llu execs, corpus %zu (+%zu new coverage), %.0f s\n", (unsigned long long)execs,
              corpus.size(), added, elapsed);
      nextReport += 10;
    }
    for (int i = 0; i < 64; ++i) {
      Bytes b = corpus[rng.below(corpus.size())];
      mutate(b, rng, corpus, maxLen);
      ++execs;
      if (runOne(b) > 0 && corpus.size() < 20000) {
        corpus.push_back(std::move(b));
        ++added;
      }
    }
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fprintf(stderr, "driver: done: %llu inputs tried in %.1f s (%.0f/s), corpus %zu, %zu added by coverage, 0 crashes\n",
          (unsigned long long)(execs + files.size()), elapsed, double(execs) / (elapsed > 0 ? elapsed : 1), corpus.size(),
          added);
  printf("{\"execs\": %llu, \"seconds\": %.1f, \"corpus\": %zu, \"added\": %zu}\n",
         (unsigned long long)(execs + files.size()), elapsed, corpus.size(), added);
  return 0;
}
