#include "runtime/scheduler.h"

#include <algorithm>

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
  size_t prefillNext = 0;              // first sequence whose prompt is not all in

  bool prefillDone() const { return prefillNext == kv.size(); }

  // A chosen token: to the callback, then the stop rules; an ended sequence frees its pages.
  void accept(int64_t b, int32_t token) {
    const GenerateRequest& req = sub->request;
    SequenceResult& r = results[size_t(b)];
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
    kv[size_t(b)].release();  // pages back to the pool now
  }
};

Scheduler::Scheduler(Engine& engine) : engine_(engine) {
  stats_.kvBlocks = engine_.kv().numBlocks();
  stats_.kvFreeBlocks = engine_.kv().allocator().numFree();
  thread_ = std::thread([this] { loop(); });
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
  }
  wake_.notify_all();
  return s;
}

void Scheduler::cancel(const std::shared_ptr<Submission>& s) {
  if (!s) return;
  s->cancel = true;
  { std::lock_guard<std::mutex> lk(mu_); }  // pairs with the engine thread's wait
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
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

// Engine thread: the numbers other threads read.
void Scheduler::publishStats() {
  int64_t seqs = 0;
  for (const auto& r : running_) seqs += r->unfinished;
  for (const auto& r : prefilling_) seqs += r->unfinished;
  std::lock_guard<std::mutex> lk(mu_);
  stats_.kvFreeBlocks = engine_.kv().allocator().numFree();
  stats_.queuedRequests = int64_t(queue_.size());
  stats_.runningRequests = int64_t(running_.size() + prefilling_.size());
  stats_.runningSequences = seqs;
}

void Scheduler::loop() {
  const int64_t bs = engine_.kv().blockSize(), total = engine_.kv().numBlocks();
  for (;;) {
    std::vector<std::shared_ptr<Submission>> cancelled, admitted;
    std::vector<std::pair<std::shared_ptr<Submission>, std::string>> tooBig;
    {
      std::unique_lock<std::mutex> lk(mu_);
      wake_.wait(lk, [&] { return stopping_ || !queue_.empty() || !running_.empty() || !prefilling_.empty(); });
      if (stopping_) break;
      // Cancelled requests leave the queue, and so do the ones larger than the whole
      // cache (they could never run; they fail now, wherever they are in the queue).
      int64_t free = engine_.kv().allocator().numFree();  // engine thread: the allocator is only touched here
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
      // FIFO admission by free blocks: nothing overtakes a waiting head.
      while (!queue_.empty()) {
        const std::shared_ptr<Submission>& s = queue_.front();
        const int64_t need = blocksNeeded(s->request, bs);
        if (need > free) break;  // waits for running sequences to give blocks back
        free -= need;
        admitted.push_back(s);
        queue_.pop_front();
      }
      stats_.queuedRequests = int64_t(queue_.size());
    }
    for (auto& s : cancelled) retire(s, abortedResults(s->request), nullptr);
    for (auto& [s, msg] : tooBig) retire(s, {}, std::make_exception_ptr(Error(ErrorCode::OutOfMemory, msg)));
    for (auto& s : admitted) admit(s);
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
    if (!prefilling_.empty()) prefillStep();
    if (!running_.empty()) decodeStep();
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

void Scheduler::admit(const std::shared_ptr<Submission>& s) {
  const GenerateRequest& req = s->request;
  const size_t B = req.sequences.size();
  auto r = std::make_unique<Running>();
  r->sub = s;
  r->results.resize(B);
  r->done.assign(B, 0);
  r->rng.assign(B, Xoshiro256(req.sampling.seed));
  r->unfinished = int64_t(B);
  r->prefilled.assign(B, 0);
  r->image.resize(B);
  for (size_t b = 0; b < B; ++b) r->results[b].promptTokens = int64_t(req.sequences[b].inputIds.size());
  try {
    r->kv.reserve(B);
    for (size_t b = 0; b < B; ++b) {
      r->kv.emplace_back(engine_.kv());
      r->kv.back().reserve(r->results[b].promptTokens + std::max<int64_t>(0, req.maxNewTokens - 1));
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
void Scheduler::prefillStep() {
  int64_t budget = engine_.prefillChunkTokens();
  std::vector<PrefillPart> parts;
  std::vector<std::pair<Running*, size_t>> who;  // request and sequence of each part
  std::vector<const SequenceInput*> starting;
  std::vector<std::pair<Running*, size_t>> startingWho;
  for (auto& up : prefilling_) {
    Running& r = *up;
    const GenerateRequest& req = r.sub->request;
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
      if (begin == 0 && q.tiles > 0) {
        starting.push_back(&q);
        startingWho.emplace_back(&r, b);
      }
      budget -= n;
    }
    if (budget <= 0) break;
  }
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
    if (!starting.empty()) {
      std::vector<Tensor> img = engine_.encodeTiles(starting, interrupt);
      for (size_t i = 0; i < starting.size(); ++i) startingWho[i].first->image[startingWho[i].second] = img[i];
    }
    for (size_t i = 0; i < parts.size(); ++i) parts[i].image = who[i].first->image[who[i].second];
    engine_.prefillStep(parts, scores, interrupt);
  } catch (...) {
    // Every request with a part in this step ends (Aborted when stopping or cancelled).
    bool aborted = false;
    try {
      throw;
    } catch (const Error& e) {
      aborted = e.code() == ErrorCode::Aborted;
    } catch (...) {
    }
    std::exception_ptr error = aborted ? nullptr : std::current_exception();
    std::set<Running*> hit;
    for (auto& w : who) hit.insert(w.first);
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
  for (size_t i = 0; i < parts.size(); ++i) {
    Running& r = *who[i].first;
    const size_t b = who[i].second;
    const GenerateRequest& req = r.sub->request;
    r.prefilled[b] += parts[i].count;
    if (r.prefilled[b] < int64_t(req.sequences[b].inputIds.size())) continue;
    r.prefillNext = b + 1;
    r.image[b] = Tensor();  // its rows are in the cache now
    if (req.returnPromptLogits) r.results[b].promptLogits = scores[i];
    if (req.maxNewTokens == 0) {
      r.results[b].finish = FinishReason::Length;
      r.done[b] = 1;
      --r.unfinished;
      r.kv[b].release();
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

void Scheduler::decodeStep() {
  std::vector<int32_t> ids;
  std::vector<SequenceKv*> seqs;
  std::vector<std::pair<Running*, int64_t>> who;  // [A] (request, sequence) of each row
  for (auto& r : running_) {
    if (r->sub->cancel) continue;  // finishes Aborted before the next step
    for (size_t b = 0; b < r->done.size(); ++b) {
      if (r->done[b]) continue;
      ids.push_back(r->results[b].tokens.back());
      seqs.push_back(&r->kv[b]);
      who.emplace_back(r.get(), int64_t(b));
    }
  }
  if (ids.empty()) return;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.maxBatchSequences = std::max(stats_.maxBatchSequences, int64_t(ids.size()));
    stats_.maxBatchRequests = std::max(stats_.maxBatchRequests, int64_t(running_.size()));
    ++stats_.decodeSteps;
  }
  std::vector<float> logits;
  try {
    engine_.decodeStep(ids, seqs, logits, &stop_);
  } catch (...) {
    // The step failed: every request in it ends, Aborted when stopping, with the error otherwise.
    bool aborted = false;
    try {
      throw;
    } catch (const Error& e) {
      aborted = e.code() == ErrorCode::Aborted;
    } catch (...) {
    }
    std::exception_ptr error = aborted ? nullptr : std::current_exception();
    std::vector<std::unique_ptr<Running>> failed = std::move(running_);
    running_.clear();
    for (auto& r : failed) finish(*r, error, aborted);
    return;
  }
  const int64_t V = engine_.vocabSize();
  std::vector<float> scores(static_cast<size_t>(V));
  for (size_t i = 0; i < who.size(); ++i) {
    Running& r = *who[i].first;
    const int64_t b = who[i].second;
    if (r.sub->cancel) continue;  // finishes Aborted before the next step; no token after a cancel
    std::copy(logits.begin() + int64_t(i) * V, logits.begin() + int64_t(i + 1) * V, scores.begin());
    r.accept(b, chooseToken(scores, r.sub->request.sampling, r.results[size_t(b)].tokens, r.rng[size_t(b)]));
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
    live_.erase(s);
  }
  retired_.notify_all();
}

}  // namespace ivl
