// Bindings of the linear algebra bnfast.curvature runs on: the Lanczos process
// (linalg/lanczos.hpp) on a HessianAt, whose products run with the GIL released, or on
// any Python callable v -> A v; and the tridiagonal eigensolver of its convergence test.
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>

#include "bind/arrays.hpp"
#include "bind/hessian_at_binding.hpp"
#include "linalg/lanczos.hpp"
#include "linalg/tridiagonal.hpp"

namespace bnfast::bind {
namespace {

using Vec = py::array_t<double>;

// A C-contiguous float64 copy of obj with `count` values in all (any shape), or a
// ValueError naming `name`.
Vec float64_values(const py::handle& obj, std::int64_t count, const std::string& name) {
  Vec a = Vec::ensure(obj);
  if (!a) {
    PyErr_Clear();
    throw py::type_error(name + " must be a float64 array");
  }
  a = py::array_t<double, py::array::c_style | py::array::forcecast>(a);
  if (a.size() != count)
    throw py::value_error(name + " must have " + std::to_string(count) + " values, got " +
                          std::to_string(a.size()));
  return a;
}

RitzEnd ritz_end(const std::string& which) {
  if (which == "largest") return RitzEnd::largest;
  if (which == "smallest") return RitzEnd::smallest;
  if (which == "both") return RitzEnd::both;
  throw py::value_error("which must be 'largest', 'smallest' or 'both', got '" + which + "'");
}

const char* status_name(Lanczos::Status s) {
  switch (s) {
    case Lanczos::Status::running: return "running";
    case Lanczos::Status::converged: return "converged";
    case Lanczos::Status::budget: return "budget";
    case Lanczos::Status::closed: return "closed";
    case Lanczos::Status::exhausted: return "exhausted";
  }
  return "";
}

// A process and whether a call is using it: advance runs with the GIL released, so a
// second thread (or the product itself, calling back) must not touch the basis then.
struct BoundLanczos {
  std::unique_ptr<Lanczos> process;
  std::atomic<bool> busy{false};
};

// Holds a BoundLanczos for one call (taken with the GIL held); RuntimeError if in use.
class InUse {
 public:
  explicit InUse(BoundLanczos& b) : b_(b) {
    if (b_.busy.exchange(true))
      throw std::runtime_error("this Lanczos process is in use (by another thread, or by "
                               "the product it is calling)");
  }
  ~InUse() { b_.busy.store(false); }
  InUse(const InUse&) = delete;
  InUse& operator=(const InUse&) = delete;
  Lanczos& operator*() const { return *b_.process; }
  Lanczos* operator->() const { return b_.process.get(); }

 private:
  BoundLanczos& b_;
};

std::unique_ptr<BoundLanczos> make_lanczos(const py::object& start, const py::object& locked) {
  if (py::array(start).ndim() != 1) throw py::value_error("start must be a vector (n,)");
  const Vec s = float64_values(start, py::len(start), "start");
  const std::int64_t n = s.size();
  if (n < 1) throw py::value_error("start must have at least one value");
  std::int64_t rows = 0;
  Vec l;
  if (!locked.is_none()) {
    l = float64_values(locked, py::array(locked).size(), "locked");
    if (l.size() % n != 0)
      throw py::value_error("locked must be rows of " + std::to_string(n) + " values");
    rows = l.size() / n;
    if (rows >= n) throw py::value_error("locked must leave a space to run in (< n rows)");
  }
  auto out = std::make_unique<BoundLanczos>();
  out->process = std::make_unique<Lanczos>(n, s.data(), rows ? l.data() : nullptr, rows);
  return out;
}

// Steps with the products of `op`: a HessianAt (no GIL needed) or a callable, called
// with the GIL held on a copy of v, whose result must have n values.
std::string advance(BoundLanczos& bound, const py::object& op, std::int64_t k,
                    const std::string& which, double tol, std::int64_t budget, double seconds) {
  const InUse held(bound);
  Lanczos& self = *held;
  const RitzEnd end = ritz_end(which);
  if (k < 1 || k > self.dim()) throw py::value_error("k must be in [1, dim]");
  const std::int64_t n = self.n();
  SymmetricProduct product;
  if (py::isinstance<BoundHessianAt>(op)) {
    BoundHessianAt& at = op.cast<BoundHessianAt&>();
    if (at.at->size() != n)
      throw py::value_error("the HessianAt has " + std::to_string(at.at->size()) +
                            " parameters, the process " + std::to_string(n));
    product = [&at](const double* v, double* out) { at.apply(v, out); };
  } else if (PyCallable_Check(op.ptr())) {
    product = [&op, n](const double* v, double* out) {
      py::gil_scoped_acquire acquire;
      Vec arg(n);
      std::memcpy(arg.mutable_data(), v, static_cast<std::size_t>(n) * sizeof(double));
      const Vec r = float64_values(op(arg), n, "the product (matvec's result)");
      std::memcpy(out, r.data(), static_cast<std::size_t>(n) * sizeof(double));
    };
  } else {
    throw py::type_error("the operator must be a HessianAt or a callable v -> A v");
  }
  Lanczos::Status status;
  {
    py::gil_scoped_release release;
    status = self.advance(product, k, end, tol, budget, seconds);
  }
  return status_name(status);
}

Vec copy_of(const std::vector<double>& v) {
  Vec out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

}  // namespace

void bind_linalg(py::module_& m) {
  py::class_<BoundLanczos>(m, "Lanczos",
                           "The Lanczos process with full reorthogonalization "
                           "(linalg/lanczos.hpp): the steps of bnfast.curvature's solver.")
      .def(py::init(&make_lanczos), py::arg("start"), py::arg("locked") = py::none(),
           "start (n,), locked (rows, n) orthonormal rows or None.")
      .def("advance", &advance, py::arg("op"), py::arg("k"), py::arg("which"), py::arg("tol"),
           py::arg("budget"), py::arg("seconds"),
           "Steps until converged, budget, closed or exhausted (or `seconds`: running); "
           "tol < 0: no convergence test. Returns the status's name.")
      .def("restart", [](BoundLanczos& b, const py::object& d) {
             const InUse held(b);
             const Vec v = float64_values(d, held->n(), "direction");
             return held->restart(v.data());
           }, py::arg("direction"), "After 'closed': go on from direction; False if it is "
                                    "(nearly) in the basis's span.")
      .def("ritz_vectors", [](BoundLanczos& b, const py::object& S) {
             const InUse held(b);
             const py::array a = as_array(S, "S");
             if (a.ndim() != 2 || a.shape(0) != held->size())
               throw py::value_error("S must be (size, p) = (" + std::to_string(held->size()) +
                                     ", p), got " + shape_str(a));
             const Vec s = float64_values(S, a.size(), "S");
             Vec out({held->n(), static_cast<std::int64_t>(a.shape(1))});
             held->ritz_vectors(s.data(), a.shape(1), out.mutable_data());
             return out;
           }, py::arg("S"), "Q^T S (n, p): the Ritz vectors of T's eigenvectors S.")
      .def_property_readonly("n", [](BoundLanczos& b) { return InUse(b)->n(); })
      .def_property_readonly("dim", [](BoundLanczos& b) { return InUse(b)->dim(); })
      .def_property_readonly("size", [](BoundLanczos& b) { return InUse(b)->size(); })
      .def_property_readonly("exhausted", [](BoundLanczos& b) { return InUse(b)->exhausted(); })
      .def_property_readonly("alpha", [](BoundLanczos& b) { return copy_of(InUse(b)->alpha()); })
      .def_property_readonly("beta", [](BoundLanczos& b) { return copy_of(InUse(b)->beta()); })
      .def_property_readonly("basis", [](BoundLanczos& b) {
             const InUse held(b);
             Vec out({held->size(), held->n()});
             std::copy(held->basis(), held->basis() + held->size() * held->n(),
                       out.mutable_data());
             return out;
           }, "(size, n): the orthonormal rows q_0 .. q_{size-1} (a copy).")
      .def_property("ritz_scale", [](BoundLanczos& b) { return InUse(b)->ritz_scale; },
                    [](BoundLanczos& b, double v) { InUse(b)->ritz_scale = v; })
      .def_property_readonly("residual", [](BoundLanczos& b) { return InUse(b)->residual(); },
                             "The last test's largest residual estimate / ritz_scale.");
  m.def("tridiagonal_eigen", [](const py::object& diag, const py::object& off) {
          const std::int64_t n = py::len(diag);
          const Vec d = float64_values(diag, n, "diag");
          const Vec e = float64_values(off, n > 0 ? n - 1 : 0, "off");
          std::vector<double> values, last;
          tridiagonal_eigen(d.data(), e.data(), n, values, last);
          return py::make_tuple(copy_of(values), copy_of(last));
        }, py::arg("diag"), py::arg("off"),
        "(eigenvalues ascending, last components of the unit eigenvectors).");
}

}  // namespace bnfast::bind
