#include "runtime/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>

#include "runtime/error.h"

namespace ivl {

namespace {
std::string str(int64_t i) { return std::to_string(i); }

// Pages a request reserves on admission: prompt + maxNewTokens − 1 tokens per
// sequence (the last token is never fed back).
int64_t blocksNeeded(const GenerateRequest& req, int64_t bs) {
  int64_t need = 0;
  for (const SequenceInput& q : req.sequences) {
    need += blocksFor(int64_t(q.inputIds.size()) + std::max<int64_t>(0, req.maxNewTokens - 1), bs);
  }
  return need;
}

// A hash of each tile's pixel floats: cached image rows are reused only for the same pixels.
// Computed for every finished sequence on the engine thread (and for every prompt checked
// against the cache), so it reads 8 bytes at a time in four independent FNV-1a-style lanes
// (a byte-wise FNV-1a took ~2.5 ms per 448² tile: ~0.3 s in the step where 128 sequences end).
std::vector<uint64_t> tileHashes(const SequenceInput& q, int64_t limit = -1) {
  std::vector<uint64_t> out(size_t(limit < 0 ? q.tiles : std::min(limit, q.tiles)));
  if (q.tiles == 0) return out;
  const size_t per = q.pixels.size() / size_t(q.tiles) * sizeof(float);
  const unsigned char* p = reinterpret_cast<const unsigned char*>(q.pixels.data());
  constexpr uint64_t kPrime = 1099511628211ull;
  for (size_t t = 0; t < out.size(); ++t) {
    const unsigned char* tile = p + t * per;
    uint64_t h[4] = {1469598103934665603ull, 0x9e3779b97f4a7c15ull, 0xbf58476d1ce4e5b9ull, 0x94d049bb133111ebull};
    size_t i = 0;
    for (; i + 32 <= per; i += 32) {
      for (int l = 0; l < 4; ++l) {
        uint64_t w;
        std::memcpy(&w, tile + i + 8 * size_t(l), 8);
        h[l] = (h[l] ^ w) * kPrime;
      }
    }
    for (; i < per; ++i) h[0] = (h[0] ^ tile[i]) * kPrime;
    uint64_t r = uint64_t(per);
    for (uint64_t x : h) r = (r ^ (x ^ (x >> 29))) * kPrime;
    out[t] = r;
  }
  return out;
}

// What a failed step means for the requests in it: null for an abort (stop / cancel: they
// finish Aborted), else the error they fail with.
std::exception_ptr failureOf(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    if (err.code() == ErrorCode::Aborted) return nullptr;
  } catch (...) {
  }
  return e;
}

// Whether a step failed for want of memory (device, or host on the CPU backend): the failure
// that shedding a request from the step can cure.
bool isOutOfMemory(std::exception_ptr e) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    return err.code() == ErrorCode::OutOfMemory;
  } catch (const std::bad_alloc&) {
    return true;
  } catch (...) {
  }
  return false;
}

double msSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

int64_t tilesOf(const GenerateRequest& req) {
  int64_t t = 0;
  for (const SequenceInput& q : req.sequences) t += q.tiles;
  return t;
}

// Tiles the vision thread runs through the ViT in one batch (at least one request's): enough
// rows for efficient GEMMs (~1025 per tile), few enough that the first request of a burst is
// not held for the ViT of the whole burst.
constexpr int64_t kAheadBatchTiles = 4;

// Below this many reusable tokens a cached prefix is not worth taking over.
constexpr int64_t kMinPrefixTokens = 16;

std::vector<SequenceResult> abortedResults(const GenerateRequest& req) {
  std::vector<SequenceResult> out(req.sequences.size());
  for (size_t b = 0; b < out.size(); ++b) {
    out[b].finish = FinishReason::Aborted;
    out[b].promptTokens = int64_t(req.sequences[b].inputIds.size());
  }
  return out;
}
}  // namespace

struct Scheduler::Running {
  Scheduler* owner = nullptr;
  std::shared_ptr<Submission> sub;
  std::vector<SequenceKv> kv;          // [B] pages, reserved on admission
  std::vector<Xoshiro256> rng;         // [B] one stream per sequence, seeded with the request's seed
  std::vector<SequenceResult> results; // [B] tokens so far (the repetition penalty's history)
  std::vector<char> done;              // [B]
  int64_t unfinished = 0;
  // Prefill progress: prompt tokens already in the cache, and the image rows of sequences
  // with tiles (encoded when their first chunk runs). A request decodes once every
  // sequence's prompt is in.
  std::vector<int64_t> prefilled;      // [B]
  std::vector<Tensor> image;           // [B]
  std::vector<int64_t> imageRowBase;   // [B] <IMG_CONTEXT> rows a reused prefix already holds
  std::vector<char> encoded;           // [B] its remaining tiles went through the ViT
  size_t prefillNext = 0;              // first sequence whose prompt is not all in

  bool prefillDone() const { return prefillNext == kv.size(); }

  // A chosen token: to the callback, then the stop rules; an ended sequence frees its pages.
  void accept(int64_t b, int32_t token) {
    const GenerateRequest& req = sub->request;
    SequenceResult& r = results[size_t(b)];
    if (r.tokens.empty()) {
      r.firstTokenMs = msSince(sub->submitted);
      owner->firstToken(r.firstTokenMs);
    }
    r.tokens.push_back(token);
    if (sub->onToken) {
      try {
        sub->onToken(b, token);
      } catch (...) {  // callbacks report their own failures (the binding cancels)
      }
    }
    if (std::find(req.eosTokenIds.begin(), req.eosTokenIds.end(), token) != req.eosTokenIds.end()) {
      r.finish = FinishReason::Eos;
    } else if (int64_t(r.tokens.size()) >= req.maxNewTokens) {
      r.finish = FinishReason::Length;
    } else {
      return;
    }
    done[size_t(b)] = 1;
    --unfinished;
    owner->sequenceEnded(*this, size_t(b));  // pages to the prefix cache, or back to the pool
  }
};

Scheduler::Scheduler(Engine& engine) : engine_(engine) {
  stats_.kvBlocks = engine_.kv().numBlocks();
  stats_.kvFreeBlocks = engine_.kv().allocator().numFree();
  thread_ = std::thread([this] { loop(); });
  if (engine_.visionAhead()) visionThread_ = std::thread([this] { visionLoop(); });
}

Scheduler::~Scheduler() { shutdown(); }

std::shared_ptr<Submission> Scheduler::submit(GenerateRequest req, TokenCallback onToken, DoneCallback onDone) {
  auto s = std::make_shared<Submission>();
  s->request = std::move(req);
  s->onToken = std::move(onToken);
  s->onDone = std::move(onDone);
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_) throw Error(ErrorCode::Disposed, "the model has been disposed");
    queue_.push_back(s);
    live_.insert(s);
    stats_.queuedRequests = int64_t(queue_.size());
    ++events_;
    if (engine_.visionAhead() && tilesOf(s->request) > 0) {
      s->ahead = Submission::Ahead::Queued;
      aheadQueue_.push_back(s);
    }
  }
  wake_.notify_all();
  visionWake_.notify_all();
  return s;
}

void Scheduler::cancel(const std::shared_ptr<Submission>& s) {
  if (!s) return;
  s->cancel = true;
  {
    std::lock_guard<std::mutex> lk(mu_);  // pairs with the engine thread's waits
    ++events_;
  }
  wake_.notify_all();
}

void Scheduler::waitRetired(const std::shared_ptr<Submission>& s) {
  if (!s) return;
  std::unique_lock<std::mutex> lk(mu_);
  retired_.wait(lk, [&] { return s->retired; });
}

void Scheduler::shutdown() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!stopping_) {
      stopping_ = true;
      stop_ = true;
      for (const std::shared_ptr<Submission>& s : live_) s->cancel = true;
    }
  }
  wake_.notify_all();
  visionWake_.notify_all();
  const auto self = std::this_thread::get_id();
  if (visionThread_.joinable() && visionThread_.get_id() != self) visionThread_.join();
  if (thread_.joinable() && thread_.get_id() != self) thread_.join();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

// Engine thread: the numbers other threads read.
void Scheduler::firstToken(double ms) {
  std::lock_guard<std::mutex> lk(mu_);
  stats_.firstTokenWaitMs += ms;
  ++stats_.firstTokens;
}

void Scheduler::publishStats() {
  int64_t seqs = 0;
  for (const auto& r : running_) seqs += r->unfinished;
  for (const auto& r : prefilling_) seqs += r->unfinished;
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t cached = cachedBlocks();
  stats_.kvFreeBlocks = engine_.kv().allocator().numFree() + cached;
  stats_.cachedBlocks = cached;
  stats_.queuedRequests = int64_t(queue_.size());
  stats_.runningRequests = int64_t(running_.size() + prefilling_.size());
  stats_.runningSequences = seqs;
}

void Scheduler::loop() {
  const int64_t bs = engine_.kv().blockSize(), total = engine_.kv().numBlocks();
  for (;;) {
    std::vector<std::shared_ptr<Submission>> cancelled, admitted;
    std::vector<std::vector<PrefixMatch>> admittedMatches;
    std::vector<std::pair<std::shared_ptr<Submission>, std::string>> tooBig;
    {
      std::unique_lock<std::mutex> lk(mu_);
      wake_.wait(lk, [&] {
        const bool work = !queue_.empty() || !running_.empty() || !prefilling_.empty();
        held_ = work && hold_ == 0;
        return stopping_ || (work && hold_ != 0);
      });
      held_ = false;
      if (stopping_) break;
      if (hold_ > 0) --hold_;
      // Cancelled requests leave the queue, and so do the ones larger than the whole
      // cache (they could never run; they fail now, wherever they are in the queue).
      // engine thread: the allocator and the prefix cache are only touched here; cached
      // prefixes count as free (admission evicts them when it needs their pages)
      int64_t free = engine_.kv().allocator().numFree() + cachedBlocks();
      for (auto it = queue_.begin(); it != queue_.end();) {
        const std::shared_ptr<Submission>& s = *it;
        const GenerateRequest& req = s->request;
        const int64_t need = blocksNeeded(req, bs);
        if (s->cancel) {
          cancelled.push_back(s);
        } else if (need > total) {
          int64_t promptSum = 0;
          for (const SequenceInput& q : req.sequences) promptSum += int64_t(q.inputIds.size());
          tooBig.emplace_back(
              s, "KV cache too small for this request: " + str(int64_t(req.sequences.size())) + " sequence(s) with " +
                     str(promptSum) + " prompt tokens and up to " + str(req.maxNewTokens) + " new tokens each need " +
                     str(need) + " blocks of " + str(bs) + " tokens, but " + str(free) + " of " + str(total) +
                     " blocks are free (capacity " + str(engine_.kv().capacityTokens()) +
                     " tokens; raise kvCacheTokens or lower maxNewTokens)");
        } else {
          ++it;
          continue;
        }
        it = queue_.erase(it);
      }
      // FIFO admission by free blocks: nothing overtakes a waiting head. A sequence that can
      // take over a cached prefix needs only the pages beyond the part it keeps.
      while (!queue_.empty()) {
        const std::shared_ptr<Submission>& s = queue_.front();
        const GenerateRequest& req = s->request;
        std::vector<PrefixMatch> matches;
        int64_t need = 0;
        for (const SequenceInput& q : req.sequences) {
          matches.push_back(findPrefix(q));
          // claimed at once: two sequences of one request (a batch of equal prompts) must not
          // both take the same cached prefix
          if (matches.back().entry) matches.back().entry->claimed = true;
          const int64_t total = int64_t(q.inputIds.size()) + std::max<int64_t>(0, req.maxNewTokens - 1);
          need += blocksFor(total, bs) - blocksFor(matches.back().keep, bs);
        }
        if (need > free) {  // waits for running sequences to give blocks back
          for (const PrefixMatch& m : matches) {
            if (m.entry) m.entry->claimed = false;
          }
          break;
        }
        for (const PrefixMatch& m : matches) {
          if (m.entry) free -= blocksFor(m.keep, bs);  // kept pages stop being evictable
        }
        free -= need;
        admitted.push_back(s);
        admittedMatches.push_back(std::move(matches));
        queue_.pop_front();
      }
      // an admitted request counts as running from now on (never as neither)
      stats_.queuedRequests = int64_t(queue_.size());
      stats_.runningRequests = int64_t(running_.size() + prefilling_.size() + admitted.size());
    }
    for (auto& s : cancelled) retire(s, abortedResults(s->request), nullptr);
    for (auto& [s, msg] : tooBig) retire(s, {}, std::make_exception_ptr(Error(ErrorCode::OutOfMemory, msg)));
    for (size_t i = 0; i < admitted.size(); ++i) admit(admitted[i], admittedMatches[i]);
    for (auto* list : {&prefilling_, &running_}) {
      for (size_t i = 0; i < list->size();) {
        if ((*list)[i]->sub->cancel) {
          std::unique_ptr<Running> r = std::move((*list)[i]);
          list->erase(list->begin() + std::ptrdiff_t(i));
          finish(*r, nullptr, true);
        } else {
          ++i;
        }
      }
    }
    if (running_.empty() && !prefilling_.empty() && waitForVision()) continue;
    if (!prefilling_.empty() && !running_.empty() && engine_.mixedSteps() && !unmixNext_) {
      mixedStep();
    } else {
      unmixNext_ = false;
      if (!prefilling_.empty()) prefillStep();
      if (!running_.empty()) decodeStep();
    }
    publishStats();
  }
  // Stopping: everything still here finishes Aborted.
  std::vector<std::unique_ptr<Running>> running = std::move(running_);
  running_.clear();
  for (auto& r : prefilling_) running.push_back(std::move(r));
  prefilling_.clear();
  for (auto& r : running) finish(*r, nullptr, true);
  std::deque<std::shared_ptr<Submission>> rest;
  {
    std::lock_guard<std::mutex> lk(mu_);
    rest.swap(queue_);
  }
  for (auto& s : rest) retire(s, abortedResults(s->request), nullptr);
  publishStats();
}

void Scheduler::admit(const std::shared_ptr<Submission>& s, const std::vector<PrefixMatch>& matches) {
  const GenerateRequest& req = s->request;
  const size_t B = req.sequences.size();
  auto r = std::make_unique<Running>();
  r->owner = this;
  r->sub = s;
  r->results.resize(B);
  r->done.assign(B, 0);
  r->rng.assign(B, Xoshiro256(req.sampling.seed));
  r->unfinished = int64_t(B);
  r->prefilled.assign(B, 0);
  r->image.resize(B);
  r->imageRowBase.assign(B, 0);
  r->encoded.assign(B, 0);
  const double queued = msSince(s->submitted);
  for (size_t b = 0; b < B; ++b) {
    r->results[b].promptTokens = int64_t(req.sequences[b].inputIds.size());
    r->results[b].queueMs = queued;
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.queueWaitMs += queued;
    ++stats_.admittedRequests;
  }
  const int64_t bs = engine_.kv().blockSize(), n = engine_.spec().numImageToken();
  if (engine_.visionAhead()) {
    // a reused prefix holds some of its tiles: the vision thread, if it has not begun them,
    // leaves the rest to the prefill step (it checks the cache itself too, but this request
    // may have taken the entry over first)
    std::lock_guard<std::mutex> lk(mu_);
    for (const PrefixMatch& m : matches) {
      if (m.tilesKept > 0 && s->ahead == Submission::Ahead::Queued) s->ahead = Submission::Ahead::None;
    }
  }
  try {
    r->kv.reserve(B);
    // Take over the matched prefixes first (their pages stay), then make room and reserve.
    for (size_t b = 0; b < B; ++b) {
      const PrefixMatch& m = matches[b];
      if (!m.entry) {
        r->kv.emplace_back(engine_.kv());
        continue;
      }
      r->kv.emplace_back(std::move(m.entry->kv));
      r->kv.back().truncate(m.keep);
      r->prefilled[b] = m.keep;
      r->imageRowBase[b] = m.tilesKept * n;
      for (size_t i = 0; i < cache_.size(); ++i) {
        if (cache_[i].get() == m.entry) {
          dropCached(i);
          break;
        }
      }
      std::lock_guard<std::mutex> lk(mu_);
      stats_.prefixHitTokens += m.keep;
    }
    for (size_t b = 0; b < B; ++b) {
      const int64_t total = r->results[b].promptTokens + std::max<int64_t>(0, req.maxNewTokens - 1);
      evictFor(blocksFor(total, bs) - int64_t(r->kv[b].pages().size()));
      r->kv[b].reserve(total);
    }
  } catch (...) {
    finish(*r, std::current_exception(), false);
    return;
  }
  prefilling_.push_back(std::move(r));
}

// One prefill step: up to the chunk budget of prompt tokens, taken in FIFO order from the
// admitted requests (a long prompt continues in the next step, after a decode step of the
// running sequences). The tiles of every sequence starting in this step go through the ViT
// as one batch. A sequence whose prompt is complete samples its first token; a request
// whose prompts are all in joins the decode batch.
Scheduler::PrefillPlan Scheduler::planPrefill() {
  int64_t budget = engine_.prefillChunkTokens();
  PrefillPlan plan;
  std::vector<PrefillPart>& parts = plan.parts;
  std::vector<std::pair<Running*, size_t>>& who = plan.who;
  std::vector<TileRange>& starting = plan.starting;
  std::vector<std::pair<Running*, size_t>>& startingWho = plan.startingWho;
  const int64_t tileTokens = engine_.spec().numImageToken();
  for (auto& up : prefilling_) {
    Running& r = *up;
    const GenerateRequest& req = r.sub->request;
    if (engine_.visionAhead()) {
      std::lock_guard<std::mutex> lk(mu_);
      if (waitsForVision(r)) continue;  // its tiles are on their way: a later step prefills it
    }
    for (size_t b = r.prefillNext; b < r.kv.size() && budget > 0; ++b) {
      const SequenceInput& q = req.sequences[b];
      const int64_t L = int64_t(q.inputIds.size()), begin = r.prefilled[b];
      const int64_t n = std::min(budget, L - begin);
      PrefillPart p;
      p.input = &q;
      p.kv = &r.kv[b];
      p.begin = begin;
      p.count = n;
      parts.push_back(p);
      who.emplace_back(&r, b);
      const int64_t firstTile = r.imageRowBase[b] / tileTokens;  // tiles before it are in a reused prefix
      if (q.tiles > firstTile && !r.encoded[b]) {
        r.encoded[b] = 1;
        starting.push_back({&q, firstTile});
        startingWho.emplace_back(&r, b);
        Tensor ahead;
        if (engine_.visionAhead()) {
          std::lock_guard<std::mutex> lk(mu_);
          if (r.sub->ahead == Submission::Ahead::Ready && r.sub->aheadRows.at(b).defined()) {
            ahead = r.sub->aheadRows[b].slice0(firstTile * tileTokens, (q.tiles - firstTile) * tileTokens);
          }
        }
        plan.startingAhead.push_back(ahead);
      }
      budget -= n;
    }
    if (budget <= 0) break;
  }
  return plan;
}

bool Scheduler::waitsForVision(const Running& r) const {
  const Submission::Ahead a = r.sub->ahead;
  return a == Submission::Ahead::Queued || a == Submission::Ahead::Encoding;
}

bool Scheduler::waitForVision() {
  if (!engine_.visionAhead()) return false;
  std::unique_lock<std::mutex> lk(mu_);
  for (const auto& r : prefilling_) {
    if (!waitsForVision(*r) || r->sub->cancel) return false;
  }
  // every vision update, submit and cancel bumps events_ under mu_, held since the check
  const uint64_t seen = events_;
  wake_.wait(lk, [&] { return stopping_ || events_ != seen; });
  return true;
}

void Scheduler::dropCached(size_t i) {
  const CachedPrefix& e = *cache_[i];
  if (engine_.visionAhead() && !e.tileHash.empty()) {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = cachedFirstTiles_.find(e.tileHash[0]);
    if (it != cachedFirstTiles_.end()) cachedFirstTiles_.erase(it);
  }
  cache_.erase(cache_.begin() + std::ptrdiff_t(i));
}

// The vision thread: takes submitted requests with tiles in order, a batch of up to
// kAheadBatchTiles tiles at a time, and runs them through the ViT on the vision device while
// the engine thread steps the running requests on theirs. A request whose first tiles are in
// the prefix cache is left to its prefill step (the cache serves them there); so is one whose
// encode fails (out of memory: the vision device's cache is released first), so failures take
// the prefill step's usual path.
void Scheduler::visionLoop() {
  for (;;) {
    std::vector<std::shared_ptr<Submission>> batch;
    {
      std::unique_lock<std::mutex> lk(mu_);
      visionWake_.wait(lk, [&] { return stopping_ || !aheadQueue_.empty(); });
      if (stopping_) return;
      int64_t tiles = 0;
      while (!aheadQueue_.empty() &&
             (batch.empty() || tiles + tilesOf(aheadQueue_.front()->request) <= kAheadBatchTiles)) {
        tiles += tilesOf(aheadQueue_.front()->request);
        batch.push_back(std::move(aheadQueue_.front()));
        aheadQueue_.pop_front();
      }
    }
    std::vector<std::vector<uint64_t>> firstTiles(batch.size());  // hashed off the lock
    for (size_t i = 0; i < batch.size(); ++i) {
      for (const SequenceInput& q : batch[i]->request.sequences) {
        if (q.tiles > 0) firstTiles[i].push_back(tileHashes(q, 1)[0]);
      }
    }
    std::vector<TileRange> ranges;
    std::vector<std::pair<size_t, size_t>> owner;  // (batch index, sequence) of each range
    bool declined = false;
    {
      std::lock_guard<std::mutex> lk(mu_);
      for (size_t i = 0; i < batch.size(); ++i) {
        Submission& s = *batch[i];
        bool cached = engine_.prefixCacheEnabled();
        for (uint64_t h : firstTiles[i]) cached = cached && cachedFirstTiles_.count(h) > 0;
        if (s.ahead != Submission::Ahead::Queued) continue;  // admitted with its first tiles cached
        if (s.cancel || s.retired || cached) {
          s.ahead = Submission::Ahead::None;
          declined = true;
          continue;
        }
        s.ahead = Submission::Ahead::Encoding;
        for (size_t b = 0; b < s.request.sequences.size(); ++b) {
          if (s.request.sequences[b].tiles == 0) continue;
          ranges.push_back({&s.request.sequences[b], 0});
          owner.emplace_back(i, b);
        }
      }
      if (declined) ++events_;
    }
    if (declined) wake_.notify_all();
    if (ranges.empty()) continue;
    // one request's cancel interrupts its own encode; a batch of several stops only for shutdown
    const std::atomic<bool>* interrupt = owner.front().first == owner.back().first ? &batch[owner.front().first]->cancel
                                                                                   : &stop_;
    std::vector<Tensor> rows;
    int64_t tiles = 0;
    std::exception_ptr error;
    try {
      rows = engine_.encodeAhead(ranges, interrupt, &tiles);
    } catch (...) {
      error = std::current_exception();
    }
    if (isOutOfMemory(error)) engine_.releaseVisionCache();
    {
      std::lock_guard<std::mutex> lk(mu_);
      for (size_t j = 0; j < owner.size(); ++j) {
        Submission& s = *batch[owner[j].first];
        if (s.ahead != Submission::Ahead::Encoding) continue;  // its other sequences settled it
        if (error || s.cancel || s.retired) {
          s.ahead = Submission::Ahead::None;
          continue;
        }
        s.aheadRows.resize(s.request.sequences.size());
        for (size_t k = j; k < owner.size() && owner[k].first == owner[j].first; ++k) {
          s.aheadRows[owner[k].second] = rows[k];
        }
        s.ahead = Submission::Ahead::Ready;
      }
      if (!error) {
        stats_.vitTiles += tiles;
        stats_.visionAheadTiles += tiles;
      }
      ++events_;
    }
    wake_.notify_all();
  }
}

void Scheduler::encodeStarting(PrefillPlan& plan, const std::atomic<bool>* interrupt) {
  std::vector<TileRange> now;  // the starting sequences without rows encoded ahead
  std::vector<size_t> nowAt;
  for (size_t i = 0; i < plan.starting.size(); ++i) {
    Tensor& slot = plan.startingWho[i].first->image[plan.startingWho[i].second];
    if (plan.startingAhead[i].defined()) {
      slot = engine_.adoptAhead(plan.startingAhead[i]);
    } else {
      now.push_back(plan.starting[i]);
      nowAt.push_back(i);
    }
  }
  if (!now.empty()) {
    int64_t tiles = 0;
    std::vector<Tensor> img = engine_.encodeTiles(now, interrupt, &tiles);
    for (size_t j = 0; j < now.size(); ++j) {
      plan.startingWho[nowAt[j]].first->image[plan.startingWho[nowAt[j]].second] = img[j];
    }
    std::lock_guard<std::mutex> lk(mu_);
    stats_.vitTiles += tiles;
  }
  for (size_t i = 0; i < plan.parts.size(); ++i) {
    plan.parts[i].image = plan.who[i].first->image[plan.who[i].second];
    plan.parts[i].imageRowBase = plan.who[i].first->imageRowBase[plan.who[i].second];
  }
}

void Scheduler::prefillStep() {
  PrefillPlan plan = planPrefill();
  const std::vector<PrefillPart>& parts = plan.parts;
  const std::vector<std::pair<Running*, size_t>>& who = plan.who;
  const std::vector<std::pair<Running*, size_t>>& startingWho = plan.startingWho;
  if (parts.empty()) return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.prefillSteps;
  }
  // What interrupts the ViT and the forward between layers: the request's own cancel flag
  // when the step serves one request (shutdown sets it too), else only shutdown — one
  // request's cancel must not abort the others sharing the step; theirs are honoured after it.
  Running* only = who[0].first;
  for (const auto& w : who) {
    if (w.first != only) only = nullptr;
  }
  const std::atomic<bool>* interrupt = only ? &only->sub->cancel : &stop_;
  std::vector<std::vector<float>> scores;
  try {
    encodeStarting(plan, interrupt);
    engine_.prefillStep(parts, scores, interrupt);
  } catch (...) {
    // Every request with a part in this step ends (Aborted when stopping or cancelled).
    std::exception_ptr error = failureOf(std::current_exception());
    const bool aborted = !error;
    std::set<Running*> hit;
    for (auto& w : who) hit.insert(w.first);
    if (isOutOfMemory(error) && hit.size() > 1) {
      // the survivors' tiles go through the ViT again with their next chunk (what this step
      // made of them may be incomplete)
      for (auto& w : startingWho) {
        w.first->encoded[w.second] = 0;
        w.first->image[w.second] = Tensor();
      }
      if (shedNewestForOom(error, prefilling_, hit)) return;
    }
    for (size_t i = 0; i < prefilling_.size();) {
      if (hit.count(prefilling_[i].get())) {
        std::unique_ptr<Running> r = std::move(prefilling_[i]);
        prefilling_.erase(prefilling_.begin() + std::ptrdiff_t(i));
        finish(*r, error, aborted);
      } else {
        ++i;
      }
    }
    return;
  }
  afterPrefill(plan, scores);
}

void Scheduler::afterPrefill(const PrefillPlan& plan, std::vector<std::vector<float>>& scores) {
  const std::vector<PrefillPart>& parts = plan.parts;
  const std::vector<std::pair<Running*, size_t>>& who = plan.who;
  for (size_t i = 0; i < parts.size(); ++i) {
    Running& r = *who[i].first;
    const size_t b = who[i].second;
    const GenerateRequest& req = r.sub->request;
    r.prefilled[b] += parts[i].count;
    if (r.prefilled[b] < int64_t(req.sequences[b].inputIds.size())) continue;
    r.prefillNext = b + 1;
    r.image[b] = Tensor();  // its rows are in the cache now
    if (engine_.visionAhead()) {
      std::lock_guard<std::mutex> lk(mu_);
      if (b < r.sub->aheadRows.size()) r.sub->aheadRows[b] = Tensor();
    }
    if (req.returnPromptLogits) r.results[b].promptLogits = scores[i];
    if (req.maxNewTokens == 0) {
      r.results[b].finish = FinishReason::Length;
      r.done[b] = 1;
      --r.unfinished;
      sequenceEnded(r, b);
      continue;
    }
    if (r.sub->cancel) continue;  // finishes Aborted before the next step; no token after a cancel
    r.accept(int64_t(b), chooseToken(scores[i], req.sampling, r.results[b].tokens, r.rng[b]));
  }
  for (size_t i = 0; i < prefilling_.size();) {
    if (!prefilling_[i]->prefillDone()) {
      ++i;
      continue;
    }
    std::unique_ptr<Running> r = std::move(prefilling_[i]);
    prefilling_.erase(prefilling_.begin() + std::ptrdiff_t(i));
    if (r->sub->cancel) finish(*r, nullptr, true);  // cancelled during its prefill: no first token
    else if (r->unfinished == 0) finish(*r, nullptr, false);
    else running_.push_back(std::move(r));
  }
}

void Scheduler::mixedStep() {
  PrefillPlan plan = planPrefill();
  DecodeRows rows;
  std::vector<std::pair<Running*, int64_t>> who;  // [A] (request, sequence) of each decode row
  if (plan.parts.empty()) return decodeStep();
  collectDecode(rows, who);
  if (rows.ids.empty()) {  // nothing to ride along: a plain prefill step (it plans the same again)
    for (const auto& w : plan.startingWho) w.first->encoded[w.second] = 0;
    return prefillStep();
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.prefillSteps;
    ++stats_.mixedSteps;
  }
  std::vector<std::vector<float>> scores;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    // several requests share the step: only shutdown interrupts it (cancels are honoured after)
    encodeStarting(plan, &stop_);
    engine_.prefillStep(plan.parts, scores, &stop_, &rows, &step_);
  } catch (...) {
    // Back to where the step found every sequence in it (tiles to be encoded again, KV cut back
    // to what its pages held), then the steps run apart: their own failure handling decides.
    for (const auto& w : plan.startingWho) {
      w.first->encoded[w.second] = 0;
      w.first->image[w.second] = Tensor();
    }
    std::set<Running*> inStep;
    for (const auto& w : plan.who) inStep.insert(w.first);
    for (const auto& w : who) inStep.insert(w.first);
    for (auto* list : {&prefilling_, &running_}) {
      for (const auto& up : *list) {
        if (inStep.count(up.get())) rewindToPages(*up);
      }
    }
    std::lock_guard<std::mutex> lk(mu_);
    --stats_.prefillSteps;
    --stats_.mixedSteps;
    --stats_.decodeSteps;
    unmixNext_ = true;
    return;
  }
  // the running sequences first: the requests whose prompts completed join them after
  afterDecode(who, t0, std::chrono::steady_clock::now());
  afterPrefill(plan, scores);
}

void Scheduler::collectDecode(DecodeRows& rows, std::vector<std::pair<Running*, int64_t>>& who) {
  for (auto& r : running_) {
    if (r->sub->cancel) continue;  // finishes Aborted before the next step
    for (size_t b = 0; b < r->done.size(); ++b) {
      if (r->done[b]) continue;
      rows.ids.push_back(r->results[b].tokens.back());
      rows.seqs.push_back(&r->kv[b]);
      rows.sampling.push_back({&r->sub->request.sampling, &r->results[b].tokens});
      who.emplace_back(r.get(), int64_t(b));
    }
  }
  if (rows.ids.empty()) return;
  std::lock_guard<std::mutex> lk(mu_);
  stats_.maxBatchSequences = std::max(stats_.maxBatchSequences, int64_t(rows.ids.size()));
  stats_.maxBatchRequests = std::max(stats_.maxBatchRequests, int64_t(running_.size()));
  ++stats_.decodeSteps;
}

void Scheduler::decodeStep() {
  DecodeRows rows;
  std::vector<std::pair<Running*, int64_t>> who;  // [A] (request, sequence) of each row
  collectDecode(rows, who);
  if (rows.ids.empty()) return;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    engine_.decodeStep(rows.ids, rows.seqs, rows.sampling, step_, &stop_);
  } catch (...) {
    // The step failed: every request in it ends, Aborted when stopping, with the error otherwise
    // (out of memory with several requests in it: only the newest).
    std::exception_ptr error = failureOf(std::current_exception());
    const bool aborted = !error;
    std::set<Running*> inStep;
    for (const auto& w : who) inStep.insert(w.first);
    if (shedNewestForOom(error, running_, inStep)) return;
    std::vector<std::unique_ptr<Running>> failed = std::move(running_);
    running_.clear();
    for (auto& r : failed) finish(*r, error, aborted);
    return;
  }
  afterDecode(who, t0, std::chrono::steady_clock::now());
}

void Scheduler::afterDecode(const std::vector<std::pair<Running*, int64_t>>& who,
                            std::chrono::steady_clock::time_point t0, std::chrono::steady_clock::time_point t1) {
  sampleRows(who);
  const auto t2 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < who.size(); ++i) {
    Running& r = *who[i].first;
    const int64_t b = who[i].second;
    if (r.sub->cancel) continue;  // finishes Aborted before the next step; no token after a cancel
    r.accept(b, step_.tokens[i]);
  }
  {
    const auto t3 = std::chrono::steady_clock::now();
    using Ms = std::chrono::duration<double, std::milli>;
    std::lock_guard<std::mutex> lk(mu_);
    stats_.decodeForwardMs += Ms(t1 - t0).count();
    stats_.decodeSampleMs += Ms(t2 - t1).count();
    stats_.decodeEmitMs += Ms(t3 - t2).count();
  }
  for (size_t i = 0; i < running_.size();) {
    if (running_[i]->unfinished == 0) {
      std::unique_ptr<Running> r = std::move(running_[i]);
      running_.erase(running_.begin() + std::ptrdiff_t(i));
      finish(*r, nullptr, false);
    } else {
      ++i;
    }
  }
}

// The host sampler over the step's sampled rows (greedy rows came back chosen): each row
// draws from its own PRNG with its own history, so rows run in parallel when there are
// enough of them to pay for the hand-off, with the same tokens as in order.
void Scheduler::sampleRows(const std::vector<std::pair<Running*, int64_t>>& who) {
  const std::vector<int64_t>& rows = step_.sampledRows;
  if (rows.empty()) return;
  const int64_t V = engine_.vocabSize();
  auto run = [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;  // the sampler works in place; one copy per thread
    for (int64_t j = begin; j < end; ++j) {
      const int64_t i = rows[size_t(j)];
      Running& r = *who[size_t(i)].first;
      const size_t b = size_t(who[size_t(i)].second);
      const float* src = step_.scores + j * V;
      scores.assign(src, src + V);
      step_.tokens[size_t(i)] = chooseToken(scores, r.sub->request.sampling, r.results[b].tokens, r.rng[b]);
    }
  };
  constexpr int64_t kParallelRows = 4;  // below this a row (~1-3 ms at V ≈ 10⁵) is cheaper than a wake-up
  if (int64_t(rows.size()) < kParallelRows) return run(0, int64_t(rows.size()));
  if (!samplePool_) {
    const int hw = int(std::thread::hardware_concurrency());
    samplePool_ = std::make_unique<cpu::ThreadPool>(std::max(1, std::min(16, hw)));
  }
  samplePool_->parallelFor(int64_t(rows.size()), run, 1);
}

// The cached prefix sharing the most leading tokens with q's prompt, cut back so that (1) at
// least one prompt token is left to prefill (its logits start generation), (2) it ends on a
// tile boundary of the image rows, (3) every tile it covers has the same pixels.
Scheduler::PrefixMatch Scheduler::findPrefix(const SequenceInput& q) {
  PrefixMatch best;
  if (!engine_.prefixCacheEnabled() || cache_.empty()) return best;
  const int32_t ctx = int32_t(engine_.spec().imageContextTokenId);
  const int64_t n = engine_.spec().numImageToken(), L = int64_t(q.inputIds.size());
  std::vector<uint64_t> hashes;
  bool hashed = false;
  for (const auto& e : cache_) {
    if (e->claimed) continue;
    int64_t m = 0;
    const int64_t limit = std::min<int64_t>(int64_t(e->ids.size()), L - 1);
    while (m < limit && e->ids[size_t(m)] == q.inputIds[size_t(m)]) ++m;
    if (m < kMinPrefixTokens || m <= best.keep) continue;
    // image rows: whole tiles only, and only tiles with the same pixels
    std::vector<int64_t> ctxPos;  // positions of the <IMG_CONTEXT> tokens before m
    for (int64_t t = 0; t < m; ++t) {
      if (q.inputIds[size_t(t)] == ctx) ctxPos.push_back(t);
    }
    int64_t tiles = int64_t(ctxPos.size()) / n;
    if (int64_t(ctxPos.size()) % n != 0) m = ctxPos[size_t(tiles * n)];  // back to the partial tile's start
    if (tiles > 0) {
      if (!hashed) {
        hashes = tileHashes(q);
        hashed = true;
      }
      int64_t same = 0;
      while (same < tiles && same < int64_t(e->tileHash.size()) && same < int64_t(hashes.size()) &&
             e->tileHash[size_t(same)] == hashes[size_t(same)]) {
        ++same;
      }
      if (same < tiles) {
        m = ctxPos[size_t(same * n)];
        tiles = same;
      }
    }
    if (m < kMinPrefixTokens || m <= best.keep) continue;
    best = {e.get(), m, tiles};
  }
  return best;
}

void Scheduler::sequenceEnded(Running& r, size_t b) {
  SequenceKv& kv = r.kv[b];
  const SequenceInput& q = r.sub->request.sequences[b];
  const std::vector<int32_t>& gen = r.results[b].tokens;
  // The pages hold the prompt and every generated token but the last (never fed back).
  std::vector<int32_t> ids = q.inputIds;
  if (!gen.empty()) ids.insert(ids.end(), gen.begin(), gen.end() - 1);
  if (!engine_.prefixCacheEnabled() || kv.length() != int64_t(ids.size()) || kv.length() < kMinPrefixTokens) {
    kv.release();
    return;
  }
  auto e = std::make_unique<CachedPrefix>(CachedPrefix{std::move(kv), std::move(ids), tileHashes(q), ++useClock_, false});
  if (engine_.visionAhead() && !e->tileHash.empty()) {
    std::lock_guard<std::mutex> lk(mu_);
    cachedFirstTiles_.insert(e->tileHash[0]);
  }
  cache_.push_back(std::move(e));
}

int64_t Scheduler::cachedBlocks() const {
  int64_t n = 0;
  for (const auto& e : cache_) n += int64_t(e->kv.pages().size());
  return n;
}

void Scheduler::evictFor(int64_t blocks) {
  BlockAllocator& a = engine_.kv().allocator();
  while (a.numFree() < blocks) {
    size_t victim = cache_.size();
    for (size_t i = 0; i < cache_.size(); ++i) {
      if (cache_[i]->claimed) continue;
      if (victim == cache_.size() || cache_[i]->lastUse < cache_[victim]->lastUse) victim = i;
    }
    if (victim == cache_.size()) return;  // nothing left to evict: reserve() reports the shortage
    dropCached(victim);  // its pages go back to the pool
  }
}

void Scheduler::finish(Running& r, std::exception_ptr error, bool aborted) {
  for (size_t b = 0; b < r.kv.size(); ++b) r.kv[b].release();
  if (aborted) {
    for (size_t b = 0; b < r.results.size(); ++b) {
      if (!r.done[b]) r.results[b].finish = FinishReason::Aborted;
    }
  }
  if (error) {
    retire(r.sub, {}, error);
  } else {
    retire(r.sub, std::move(r.results), nullptr);
  }
}

bool Scheduler::shedNewestForOom(std::exception_ptr error, std::vector<std::unique_ptr<Running>>& list,
                                 const std::set<Running*>& inStep) {
  if (!isOutOfMemory(error) || inStep.size() < 2) return false;
  // Lists keep admission order: the newest request in the step is the last one found.
  for (size_t i = list.size(); i-- > 0;) {
    if (!inStep.count(list[i].get())) continue;
    std::unique_ptr<Running> r = std::move(list[i]);
    list.erase(list.begin() + std::ptrdiff_t(i));
    finish(*r, error, false);
    break;
  }
  for (const auto& up : list) {
    if (inStep.count(up.get())) rewindToPages(*up);
  }
  engine_.releaseDeviceCaches();
  return true;
}

// A failed step appended its tokens' slots before it threw: each unfinished sequence goes back
// to what its pages held (the prompt so far, then every generated token but the last), keeping
// its reserved pages, so the retry writes the same positions again.
void Scheduler::rewindToPages(Running& r) {
  for (size_t b = 0; b < r.kv.size(); ++b) {
    if (r.done[b]) continue;
    const int64_t prompt = r.results[b].promptTokens;
    const int64_t held = r.prefilled[b] < prompt
                             ? r.prefilled[b]
                             : prompt + std::max<int64_t>(0, int64_t(r.results[b].tokens.size()) - 1);
    r.kv[b].rewind(held);
  }
}

void Scheduler::holdForTesting(int64_t iterations) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    hold_ = iterations < 0 ? -1 : iterations;
    if (hold_ != 0) held_ = false;  // until the engine thread holds again (its wait sets it)
  }
  wake_.notify_all();
}

bool Scheduler::heldForTesting() const {
  std::lock_guard<std::mutex> lk(mu_);
  return held_;
}

void Scheduler::retire(const std::shared_ptr<Submission>& sub, std::vector<SequenceResult>&& results,
                       std::exception_ptr error) {
  std::shared_ptr<Submission> s = sub;  // keep it while live_ lets go
  publishStats();                       // its pages are back: visible before its promise settles
  {
    std::lock_guard<std::mutex> lk(mu_);
    ++stats_.completedRequests;  // likewise counted before its promise can settle
  }
  try {
    if (s->onDone) s->onDone(std::move(results), error);
  } catch (...) {
  }
  {
    std::lock_guard<std::mutex> lk(mu_);
    s->retired = true;
    s->aheadRows.clear();  // rows encoded ahead for nothing (cancelled, failed) go back now
    live_.erase(s);
  }
  retired_.notify_all();
}

}  // namespace ivl
