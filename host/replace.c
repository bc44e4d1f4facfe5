/* replace.c — the greedy replacement search with the residual cache, early
 * stopping, layer-forward accounting, resumable state, and the trajectory as
 * JSON and SVG. The contract is in replace.h. */
#define _POSIX_C_SOURCE 200809L
#include "replace.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void dtr_replace_result_free(dtr_replace_result *r) {
  if (!r) return;
  for (uint32_t k = 0; k < r->nsteps; k++) free(r->steps[k].cand);
  free(r->steps);
  free(r->replaced);
  memset(r, 0, sizeof *r);
}

static double score_of(const dtr_eval_result *e, int use_norm, double *lo, double *hi) {
  if (e->stopped) {
    *lo = *hi = NAN;
    return e->bound;
  }
  if (!e->multiple_choice) {
    *lo = e->ppl_lo;
    *hi = e->ppl_hi;
    return e->ppl;
  }
  *lo = use_norm ? e->acc_norm_lo : e->acc_lo;
  *hi = use_norm ? e->acc_norm_hi : e->acc_hi;
  return use_norm ? e->acc_norm : e->acc;
}

/* ---- JSON ------------------------------------------------------------------------ */

static json_t *num(double x) { return isfinite(x) ? json_real(x) : json_null(); }
static double getnum(json_t *j) { return json_is_number(j) ? json_number_value(j) : NAN; }

static json_t *to_json(const dtr_replace_result *r, const char *identity) {
  json_t *steps = json_array(), *order = json_array();
  for (uint32_t k = 0; k < r->nsteps; k++) {
    const dtr_replace_step *s = &r->steps[k];
    json_t *cs = json_array();
    for (uint32_t i = 0; i < s->ncand; i++) {
      const dtr_replace_cand *c = &s->cand[i];
      json_array_append_new(
          cs, json_pack("{s:i,s:o,s:b,s:o,s:o,s:I,s:I,s:f}", "layer", (json_int_t)c->layer,
                        "score", num(c->score), "stopped", c->stopped, "lo", num(c->lo), "hi",
                        num(c->hi), "examples", (json_int_t)c->examples, "layer_forwards",
                        (json_int_t)c->layer_forwards, "seconds", c->seconds));
    }
    json_t *st = json_pack("{s:i,s:o,s:o}", "step", (json_int_t)(k + 1), "candidates", cs,
                           "score", num(s->score));
    json_object_set_new(st, "chosen", s->chosen >= 0 ? json_integer(s->chosen) : json_null());
    json_array_append_new(steps, st);
  }
  for (uint32_t i = 0; i < r->nreplaced; i++) json_array_append_new(order, json_integer(r->replaced[i]));
  json_t *j = json_pack(
      "{s:s,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:I,s:I,s:f}", "metric",
      r->metric ? r->metric : "?", "higher_is_better", r->higher_better, "base", num(r->base),
      "base_ci", json_pack("[o,o]", num(r->base_lo), num(r->base_hi)), "threshold",
      num(r->threshold), "final", num(r->final), "final_ci",
      json_pack("[o,o]", num(r->final_lo), num(r->final_hi)), "replaced", order, "steps", steps,
      "n_replaced", json_integer(r->nreplaced), "complete", json_false(), "layer_forwards",
      (json_int_t)r->layer_forwards, "plain_layer_forwards", (json_int_t)r->plain_layer_forwards,
      "forwards_per_eval", (json_int_t)r->forwards_per_eval, "seconds", r->seconds);
  if (identity) json_object_set_new(j, "run", json_string(identity));
  return j;
}

char *dtr_replace_json(const dtr_replace_result *r) {
  json_t *j = to_json(r, NULL);
  json_object_set_new(j, "complete", json_true());
  char *s = json_dumps(j, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
  json_decref(j);
  return s;
}

static dtr_status save_state(const dtr_replace_result *r, const char *identity, const char *path,
                             char *err, size_t errlen) {
  json_t *j = to_json(r, identity);
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int bad = !j || json_dump_file(j, tmp, JSON_INDENT(1) | JSON_REAL_PRECISION(17)) != 0 ||
            rename(tmp, path) != 0;
  json_decref(j);
  if (bad) {
    remove(tmp);
    return dtr_errf(err, errlen, DTR_ERR_IO, "%s: cannot write the search state", path);
  }
  return DTR_OK;
}

/* ---- the search ------------------------------------------------------------------ */

typedef struct search {
  dtr_model *m;
  dtr_block **stu;
  const dtr_eval_set *set;
  const dtr_replace_opts *o;
  dtr_replace_result *r;
  dtr_hcache *cache;
  uint32_t nl;
  int *active; /* (nl) routed through its student now */
} search;

static int better(const search *S, double a, double b) {
  return S->r->higher_better ? a > b : a < b;
}
static int meets(const search *S, double a) {
  return S->r->higher_better ? a >= S->r->threshold : a <= S->r->threshold;
}

/* Routes every active layer through its student (1) or back (0). */
static dtr_status route(search *S, int on) {
  for (uint32_t L = 0; L < S->nl; L++)
    if (S->active[L]) {
      dtr_status st = dtr_model_try_student(S->m, L, on ? S->stu[L] : NULL, NULL);
      if (st) return st;
    }
  return DTR_OK;
}

/* One evaluation of the current routing; from: the changed layer (0: all). */
static dtr_status evaluate(search *S, uint32_t from, int record, double min_acc, double max_ppl,
                           dtr_eval_result *e, char *err, size_t errlen) {
  dtr_eval_opts eo;
  memset(&eo, 0, sizeof eo);
  eo.batch = S->o->batch;
  eo.window = S->o->window;
  eo.use_norm = S->o->use_norm;
  eo.min_acc = min_acc;
  eo.max_ppl = max_ppl;
  eo.cache = S->cache;
  eo.from_layer = from;
  eo.record = record && S->cache;
  dtr_status st = dtr_eval_run(S->m, S->set, &eo, e, err, errlen);
  if (!st) S->r->layer_forwards += e->layer_forwards;
  return st;
}

static dtr_status load_state(search *S, const char *identity, json_t **out, char *err,
                             size_t errlen) {
  *out = NULL;
  FILE *f = fopen(S->o->state_path, "rb");
  if (!f) return DTR_OK;
  fclose(f);
  json_error_t je;
  json_t *j = json_load_file(S->o->state_path, 0, &je);
  if (!j)
    return dtr_errf(err, errlen, DTR_ERR_FORMAT, "%s: line %d: %s", S->o->state_path, je.line,
                je.text);
  const char *id = json_string_value(json_object_get(j, "run"));
  if (!id || strcmp(id, identity)) {
    json_decref(j);
    return dtr_errf(err, errlen, DTR_ERR_INVALID,
                "%s: the search state is from another run (%s); this run is %s; remove it to "
                "start over",
                S->o->state_path, id ? id : "no run id", identity);
  }
  *out = j;
  return DTR_OK;
}

dtr_status dtr_replace_run(dtr_model *m, dtr_block **students, const dtr_eval_set *set,
                           const dtr_replace_opts *o, dtr_replace_result *r, char *err,
                           size_t errlen) {
  memset(r, 0, sizeof *r);
  const dtr_model_config *c = dtr_model_cfg(m);
  search S = {m, students, set, o, r, NULL, c->num_hidden_layers, NULL};
  int mc = dtr_eval_set_multiple_choice(set);
  r->higher_better = mc;
  r->metric = mc ? (o->use_norm ? "acc_norm" : "acc") : "ppl";
  if (!o->use_threshold && !(o->tolerance >= 0))
    return dtr_errf(err, errlen, DTR_ERR_INVALID, "replace: the tolerance must be >= 0");
  double t_start = now_s();
  S.active = calloc(S.nl, sizeof *S.active);
  r->replaced = calloc(S.nl, sizeof *r->replaced);
  r->steps = calloc(S.nl + 1, sizeof *r->steps);
  if (!S.active || !r->replaced || !r->steps) {
    free(S.active);
    return dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory");
  }
  uint32_t ncand0 = 0;
  for (uint32_t L = 0; L < S.nl; L++) {
    if (!students[L]) continue;
    if (c->layer_types[L] != DTR_LAYER_FULL_ATTENTION) {
      free(S.active);
      return dtr_errf(err, errlen, DTR_ERR_INVALID,
                  "replace: layer %u has a student but is not full attention", L);
    }
    ncand0++;
  }
  if (!o->plain) {
    S.cache = dtr_hcache_create(S.nl, o->cache_bytes ? o->cache_bytes : ((size_t)1 << 30));
    if (!S.cache) {
      free(S.active);
      return dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory");
    }
  }
  /* the identity of a run: what must match for a resume */
  char identity[512];
  snprintf(identity, sizeof identity,
           "metric=%s threshold=%s%.17g examples=%zu candidates=%u batch=%u window=%u", r->metric,
           o->use_threshold ? "abs:" : o->relative ? "rel:" : "tol:", o->use_threshold ? o->threshold : o->tolerance,
           dtr_eval_set_count(set), ncand0, o->batch, o->window);
  json_t *state = NULL;
  dtr_status st = DTR_OK;
  dtr_eval_result e;
  memset(&e, 0, sizeof e);
  if (o->state_path && (st = load_state(&S, identity, &state, err, errlen))) goto done;

  /* base */
  json_t *jsteps = state ? json_object_get(state, "steps") : NULL;
  if (state && json_is_number(json_object_get(state, "base"))) {
    r->base = getnum(json_object_get(state, "base"));
    r->base_lo = getnum(json_array_get(json_object_get(state, "base_ci"), 0));
    r->base_hi = getnum(json_array_get(json_object_get(state, "base_ci"), 1));
    r->threshold = getnum(json_object_get(state, "threshold"));
    r->forwards_per_eval = (size_t)json_integer_value(json_object_get(state, "forwards_per_eval"));
    r->layer_forwards = (size_t)json_integer_value(json_object_get(state, "layer_forwards"));
    /* the finished steps are replayed below from their stored candidates; the
     * cache starts from the teacher's residual streams */
    if (S.cache) {
      if ((st = evaluate(&S, 0, 1, 0, 0, &e, err, errlen))) goto done;
      dtr_eval_result_free(&e);
      dtr_hcache_keep_pending(S.cache);
      dtr_hcache_commit(S.cache, 0);
    }
    if (o->on_base) {
      dtr_eval_result b;
      memset(&b, 0, sizeof b);
      b.multiple_choice = mc;
      b.acc = b.acc_norm = b.ppl = r->base;
      b.n = b.total = dtr_eval_set_count(set);
      o->on_base(o->ud, &b, r->threshold);
    }
  } else {
    if ((st = evaluate(&S, 0, 1, 0, 0, &e, err, errlen))) goto done;
    r->base = score_of(&e, o->use_norm, &r->base_lo, &r->base_hi);
    r->forwards_per_eval = e.forwards;
    double tol = o->relative ? o->tolerance * r->base : o->tolerance;
    r->threshold = o->use_threshold ? o->threshold : (mc ? r->base - tol : r->base + tol);
    if (S.cache) {
      dtr_hcache_keep_pending(S.cache);
      dtr_hcache_commit(S.cache, 0);
    }
    if (o->on_base) o->on_base(o->ud, &e, r->threshold);
    dtr_eval_result_free(&e);
  }
  r->final = r->base;
  r->final_lo = r->base_lo;
  r->final_hi = r->base_hi;
  r->plain_layer_forwards = r->forwards_per_eval * S.nl;

  for (uint32_t k = 0;; k++) {
    dtr_replace_step *sp = &r->steps[k];
    sp->chosen = -1;
    sp->score = NAN;
    sp->cand = calloc(S.nl, sizeof *sp->cand);
    if (!sp->cand) { st = dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory"); goto done; }
    r->nsteps = k + 1;
    json_t *js = json_array_get(jsteps, k);
    json_t *jc = js ? json_object_get(js, "candidates") : NULL;
    int have_best = 0;
    uint32_t bestL = 0;
    double best = NAN;
    uint32_t nc = 0;
    for (uint32_t L = 0; L < S.nl; L++)
      if (students[L] && !S.active[L]) nc++;
    if (!nc) { r->nsteps = k; break; }
    r->plain_layer_forwards += (size_t)nc * r->forwards_per_eval * S.nl;
    for (uint32_t L = 0; L < S.nl; L++) {
      if (!students[L] || S.active[L]) continue;
      dtr_replace_cand *cd = &sp->cand[sp->ncand];
      json_t *done_c = json_array_get(jc, sp->ncand);
      if (done_c && json_integer_value(json_object_get(done_c, "layer")) == L) {
        /* scored before the interruption */
        cd->layer = L;
        cd->score = getnum(json_object_get(done_c, "score"));
        cd->stopped = json_is_true(json_object_get(done_c, "stopped"));
        cd->lo = getnum(json_object_get(done_c, "lo"));
        cd->hi = getnum(json_object_get(done_c, "hi"));
        cd->examples = (size_t)json_integer_value(json_object_get(done_c, "examples"));
        cd->layer_forwards = (size_t)json_integer_value(json_object_get(done_c, "layer_forwards"));
        cd->seconds = getnum(json_object_get(done_c, "seconds"));
      } else {
        double min_acc = 0, max_ppl = 0;
        if (!o->plain) {
          if (mc) {
            min_acc = r->threshold;
            /* a tie cannot win: the lower layer, scored first, keeps it */
            double beat = have_best ? best + 0.5 / (double)dtr_eval_set_count(set) : -INFINITY;
            if (beat > min_acc) min_acc = beat;
            if (!(min_acc > 0)) min_acc = 1e-300; /* 0 turns the early stop off */
          } else {
            max_ppl = r->threshold;
            if (have_best && best < max_ppl) max_ppl = best;
          }
        }
        size_t lf0 = r->layer_forwards;
        if ((st = dtr_model_try_student(m, L, students[L], NULL))) {
          dtr_errf(err, errlen, st, "replace: %s", dtr_ctx_error(dtr_model_ctx(m)));
          goto done;
        }
        st = evaluate(&S, L, 1, min_acc, max_ppl, &e, err, errlen);
        dtr_model_try_student(m, L, NULL, NULL);
        if (st) goto done;
        cd->layer = L;
        cd->score = score_of(&e, o->use_norm, &cd->lo, &cd->hi);
        cd->stopped = e.stopped;
        cd->examples = e.n;
        cd->seconds = e.seconds;
        cd->layer_forwards = r->layer_forwards - lf0;
        dtr_eval_result_free(&e);
      }
      sp->ncand++;
      if (!cd->stopped && (!have_best || better(&S, cd->score, best))) {
        have_best = 1;
        best = cd->score;
        bestL = L;
        sp->score = best;
        if (S.cache && !done_c) dtr_hcache_keep_pending(S.cache);
      }
      if (o->on_candidate) o->on_candidate(o->ud, k + 1, cd, have_best ? best : NAN);
      if (o->state_path && (st = save_state(r, identity, o->state_path, err, errlen))) goto done;
    }
    if (have_best && meets(&S, best)) {
      sp->chosen = (int32_t)bestL;
      S.active[bestL] = 1;
      if ((st = dtr_model_try_student(m, bestL, students[bestL], NULL))) goto done;
      if (S.cache) dtr_hcache_commit(S.cache, bestL);
      r->replaced[r->nreplaced++] = bestL;
      r->final = best;
      for (uint32_t i = 0; i < sp->ncand; i++)
        if (sp->cand[i].layer == bestL) {
          r->final_lo = sp->cand[i].lo;
          r->final_hi = sp->cand[i].hi;
        }
    }
    if (o->state_path && (st = save_state(r, identity, o->state_path, err, errlen))) goto done;
    if (o->on_step) o->on_step(o->ud, k + 1, sp);
    if (sp->chosen < 0) break;
  }
  /* make the choice permanent: the students move into the model */
  if ((st = route(&S, 0))) goto done;
  for (uint32_t i = 0; i < r->nreplaced; i++) {
    uint32_t L = r->replaced[i];
    S.active[L] = 0;
    st = dtr_model_replace_layer(m, L, students[L]);
    students[L] = NULL;
    if (st) {
      dtr_errf(err, errlen, st, "replace: layer %u: %s", L, dtr_ctx_error(dtr_model_ctx(m)));
      goto done;
    }
  }
  r->seconds = now_s() - t_start;
done:
  if (st) route(&S, 0);
  json_decref(state);
  dtr_hcache_free(S.cache);
  free(S.active);
  return st;
}

/* ---- SVG ------------------------------------------------------------------------- */

dtr_status dtr_replace_svg(const dtr_replace_result *r, const char *title, const char *path,
                           char *err, size_t errlen) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) return dtr_errf(err, errlen, DTR_ERR_IO, "%s: cannot create", tmp);
  /* points: (0, base), then (i, score after the i-th replacement) */
  uint32_t n = r->nreplaced + 1;
  double lo = r->base, hi = r->base;
  double ys[258];
  ys[0] = r->base;
  for (uint32_t i = 0, p = 1; i < r->nsteps && p < 258; i++)
    if (r->steps[i].chosen >= 0) ys[p++] = r->steps[i].score;
  /* the best candidate of the step that stopped, if any, shown hollow */
  double stop_y = NAN;
  if (r->nsteps && r->steps[r->nsteps - 1].chosen < 0) stop_y = r->steps[r->nsteps - 1].score;
  for (uint32_t i = 0; i < n; i++) {
    if (ys[i] < lo) lo = ys[i];
    if (ys[i] > hi) hi = ys[i];
  }
  if (isfinite(r->threshold)) {
    if (r->threshold < lo) lo = r->threshold;
    if (r->threshold > hi) hi = r->threshold;
  }
  if (isfinite(stop_y)) {
    if (stop_y < lo) lo = stop_y;
    if (stop_y > hi) hi = stop_y;
  }
  double pad = (hi - lo) * 0.1 + 1e-9;
  lo -= pad;
  hi += pad;
  const double W = 640, H = 400, ml = 70, mr = 30, mt = 50, mb = 50;
  uint32_t xmax = n > 1 ? n : 2;
  if (isfinite(stop_y)) xmax = n + 1 > xmax ? n + 1 : xmax;
#define PX(i) (ml + (W - ml - mr) * (double)(i) / (double)(xmax - 1))
#define PY(v) (mt + (H - mt - mb) * (1.0 - ((v) - lo) / (hi - lo)))
  fprintf(f,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
          "font-family=\"sans-serif\" font-size=\"12\">\n"
          "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
          "<text x=\"%.0f\" y=\"24\" font-size=\"15\">%s</text>\n",
          W, H, ml, title ? title : "greedy replacement");
  fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", ml,
          H - mb, W - mr, H - mb);
  fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", ml, mt,
          ml, H - mb);
  for (uint32_t i = 0; i < xmax; i++)
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%u</text>\n", PX(i),
            H - mb + 16, i);
  fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">layers replaced</text>\n",
          (ml + W - mr) / 2, H - 12);
  for (int t = 0; t <= 4; t++) {
    double v = lo + (hi - lo) * t / 4;
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>\n", ml - 6,
            PY(v) + 4, v);
  }
  fprintf(f,
          "<text transform=\"translate(16 %.1f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n",
          (mt + H - mb) / 2, r->metric ? r->metric : "score");
  fprintf(f,
          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#2a7\" "
          "stroke-dasharray=\"6 3\"/><text x=\"%.1f\" y=\"%.1f\" fill=\"#2a7\" "
          "text-anchor=\"end\">base %.4g</text>\n",
          ml, PY(r->base), W - mr, PY(r->base), W - mr, PY(r->base) - 4, r->base);
  if (isfinite(r->threshold))
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c33\" "
            "stroke-dasharray=\"6 3\"/><text x=\"%.1f\" y=\"%.1f\" fill=\"#c33\" "
            "text-anchor=\"end\">threshold %.4g</text>\n",
            ml, PY(r->threshold), W - mr, PY(r->threshold), W - mr, PY(r->threshold) + 14,
            r->threshold);
  fprintf(f, "<polyline fill=\"none\" stroke=\"#36c\" stroke-width=\"2\" points=\"");
  for (uint32_t i = 0; i < n; i++) fprintf(f, "%.1f,%.1f ", PX(i), PY(ys[i]));
  fprintf(f, "\"/>\n");
  for (uint32_t i = 0; i < n; i++) {
    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#36c\"/>\n", PX(i), PY(ys[i]));
    if (i) fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">L%u</text>\n", PX(i),
                   PY(ys[i]) - 8, r->replaced[i - 1]);
  }
  if (isfinite(stop_y)) {
    const dtr_replace_step *s = &r->steps[r->nsteps - 1];
    uint32_t L = 0;
    for (uint32_t i = 0; i < s->ncand; i++)
      if (!s->cand[i].stopped && s->cand[i].score == stop_y) { L = s->cand[i].layer; break; }
    fprintf(f,
            "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"white\" stroke=\"#c33\"/>"
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#c33\">L%u (rejected)"
            "</text>\n",
            PX(n), PY(stop_y), PX(n), PY(stop_y) - 8, L);
  }
  fprintf(f, "</svg>\n");
#undef PX
#undef PY
  if (fclose(f) != 0 || rename(tmp, path) != 0) {
    remove(tmp);
    return dtr_errf(err, errlen, DTR_ERR_IO, "%s: cannot write", path);
  }
  return DTR_OK;
}
