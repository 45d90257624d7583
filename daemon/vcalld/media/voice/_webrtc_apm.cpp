// A binding to the WebRTC audio processing module as Debian packages it
// (libwebrtc-audio-processing 0.3, the library PulseAudio's echo canceller uses): echo
// cancellation, noise suppression, gain control and a high-pass filter on 16-bit audio.
// The README's "Echo cancellation" section says why this library and not a PyPI binding.
//
// `process` takes any whole number of 10 ms chunks and releases the GIL while it works. It
// feeds the echo reference and the microphone in lockstep, chunk by chunk: fed from another
// thread, the reference arrives in bursts ahead of or behind the microphone, and the
// canceller (which aligns the two by how much reference it holds) then measured 8-11 dB of
// echo return loss enhancement instead of 44 on the test's sound card.

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstring>
#include <memory>
#include <mutex>

#include <webrtc/common.h>
#include <webrtc/modules/audio_processing/include/audio_processing.h>
#include <webrtc/modules/interface/module_common_types.h>

namespace {

struct Apm {
    PyObject_HEAD
    webrtc::AudioProcessing* apm;
    std::mutex* lock;  // the library's own locking has changed between releases; be explicit
    int sample_rate;
    int channels;
    size_t chunk_samples;  // per channel, 10 ms
};

PyObject* apm_error(const char* what, int code) {
    PyErr_Format(PyExc_RuntimeError, "webrtc audio processing: %s failed (error %d)", what, code);
    return nullptr;
}

int apm_init(Apm* self, PyObject* args, PyObject* kwargs) {
    static const char* keywords[] = {"sample_rate", "channels", "echo_cancellation",
                                     "noise_suppression", "gain_control", "high_pass_filter",
                                     nullptr};
    int sample_rate, channels, aec, ns, agc, high_pass;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "ii$pppp", const_cast<char**>(keywords),
                                     &sample_rate, &channels, &aec, &ns, &agc, &high_pass))
        return -1;
    if (sample_rate != 16000 && sample_rate != 32000 && sample_rate != 48000) {
        PyErr_SetString(PyExc_ValueError, "sample_rate must be 16000, 32000 or 48000");
        return -1;
    }
    if (channels != 1 && channels != 2) {
        PyErr_SetString(PyExc_ValueError, "channels must be 1 or 2");
        return -1;
    }
    webrtc::Config config;
    // A kiosk's playback and capture devices report their delays loosely (and USB or
    // Bluetooth ones not at all): let the canceller find the delay in the signals.
    config.Set<webrtc::DelayAgnostic>(new webrtc::DelayAgnostic(true));
    config.Set<webrtc::ExtendedFilter>(new webrtc::ExtendedFilter(true));
    // The experimental AGC drives an analog mixer volume; ours is digital only.
    config.Set<webrtc::ExperimentalAgc>(new webrtc::ExperimentalAgc(false));
    std::unique_ptr<webrtc::AudioProcessing> apm(webrtc::AudioProcessing::Create(config));
    if (!apm) {
        PyErr_SetString(PyExc_RuntimeError, "webrtc audio processing: Create failed");
        return -1;
    }
    // The AudioFrame interface wants the reverse stream at the capture rate, from the first call.
    webrtc::ProcessingConfig streams = {{
        webrtc::StreamConfig(sample_rate, channels), webrtc::StreamConfig(sample_rate, channels),
        webrtc::StreamConfig(sample_rate, 1), webrtc::StreamConfig(sample_rate, 1),
    }};
    int code;
    if ((code = apm->Initialize(streams)) || (code = apm->echo_cancellation()->Enable(aec)) ||
        (code = apm->echo_cancellation()->set_suppression_level(
             webrtc::EchoCancellation::kHighSuppression)) ||
        (code = apm->echo_cancellation()->enable_metrics(aec)) ||
        (code = apm->echo_cancellation()->enable_delay_logging(aec)) ||
        (code = apm->noise_suppression()->set_level(webrtc::NoiseSuppression::kHigh)) ||
        (code = apm->noise_suppression()->Enable(ns)) ||
        (code = apm->gain_control()->set_mode(webrtc::GainControl::kAdaptiveDigital)) ||
        (code = apm->gain_control()->Enable(agc)) ||
        (code = apm->high_pass_filter()->Enable(high_pass))) {
        apm_error("configuration", code);
        return -1;
    }
    delete self->lock;
    delete self->apm;
    self->apm = apm.release();
    self->lock = new std::mutex();
    self->sample_rate = sample_rate;
    self->channels = channels;
    self->chunk_samples = static_cast<size_t>(sample_rate / 100);
    return 0;
}

void apm_dealloc(Apm* self) {
    delete self->lock;
    delete self->apm;
    PyTypeObject* type = Py_TYPE(self);
    PyObject_Free(self);
    Py_DECREF(type);  // heap types are owned by their instances
}

bool check_ready(Apm* self) {
    if (self->apm == nullptr) {
        PyErr_SetString(PyExc_RuntimeError, "AudioProcessing was not initialised");
        return false;
    }
    return true;
}

// The number of whole chunks in `buffer`, or -1 (with an exception) if it is not whole.
Py_ssize_t chunks_in(Apm* self, const Py_buffer& buffer, int channels) {
    Py_ssize_t chunk_bytes =
        static_cast<Py_ssize_t>(self->chunk_samples * channels * sizeof(int16_t));
    if (buffer.len % chunk_bytes != 0) {
        PyErr_Format(PyExc_ValueError,
                     "expected whole 10 ms chunks of %d-channel 16-bit audio at %d Hz "
                     "(%zd bytes each), got %zd bytes",
                     channels, self->sample_rate, chunk_bytes, buffer.len);
        return -1;
    }
    return buffer.len / chunk_bytes;
}

void load(webrtc::AudioFrame* frame, const Apm* self, const int16_t* samples, int channels) {
    frame->sample_rate_hz_ = self->sample_rate;
    frame->num_channels_ = channels;
    frame->samples_per_channel_ = self->chunk_samples;
    std::memcpy(frame->data_, samples, self->chunk_samples * channels * sizeof(int16_t));
}

PyObject* apm_process(Apm* self, PyObject* args) {
    if (!check_ready(self)) return nullptr;
    Py_buffer capture, render;
    int delay_ms;
    if (!PyArg_ParseTuple(args, "y*y*i", &capture, &render, &delay_ms)) return nullptr;
    const bool cancels_echo = self->apm->echo_cancellation()->is_enabled();
    Py_ssize_t chunks = chunks_in(self, capture, self->channels);
    // Without echo cancellation the render side is never read, and may be empty.
    Py_ssize_t render_chunks = chunks;
    if (chunks >= 0 && cancels_echo) render_chunks = chunks_in(self, render, 1);
    if (render_chunks >= 0 && render_chunks != chunks) {
        PyErr_Format(PyExc_ValueError, "%zd chunks of capture but %zd of render", chunks,
                     render_chunks);
        render_chunks = -1;
    }
    PyObject* result =
        render_chunks < 0 ? nullptr : PyBytes_FromStringAndSize(nullptr, capture.len);
    if (result == nullptr) {
        PyBuffer_Release(&capture);
        PyBuffer_Release(&render);
        return nullptr;
    }
    const int16_t* in = static_cast<const int16_t*>(capture.buf);
    const int16_t* played = static_cast<const int16_t*>(render.buf);
    int16_t* out = reinterpret_cast<int16_t*>(PyBytes_AS_STRING(result));
    const size_t chunk_values = self->chunk_samples * self->channels;
    int code = 0;
    const char* failed = nullptr;
    Py_BEGIN_ALLOW_THREADS {
        // The guard ends before the GIL is taken back: never hold one while waiting for the other.
        std::lock_guard<std::mutex> guard(*self->lock);
        webrtc::AudioFrame frame;
        for (Py_ssize_t i = 0; i < chunks && failed == nullptr; ++i) {
            if (cancels_echo) {
                load(&frame, self, played + i * self->chunk_samples, 1);
                if ((code = self->apm->AnalyzeReverseStream(&frame)) != 0) {
                    failed = "AnalyzeReverseStream";
                    break;
                }
                // Required before every chunk while echo cancellation is on.
                self->apm->set_stream_delay_ms(delay_ms);
            }
            load(&frame, self, in + i * chunk_values, self->channels);
            code = self->apm->ProcessStream(&frame);
            // A delay outside the library's range is clamped and reported as a warning.
            if (code != 0 && code != webrtc::AudioProcessing::kBadStreamParameterWarning)
                failed = "ProcessStream";
            std::memcpy(out + i * chunk_values, frame.data_, chunk_values * sizeof(int16_t));
        }
    } Py_END_ALLOW_THREADS
    PyBuffer_Release(&capture);
    PyBuffer_Release(&render);
    if (failed != nullptr) {
        Py_DECREF(result);
        return apm_error(failed, code);
    }
    return result;
}

PyObject* apm_echo_metrics(Apm* self, PyObject*) {
    if (!check_ready(self)) return nullptr;
    webrtc::EchoCancellation::Metrics metrics;
    int median = 0, deviation = 0;
    float poor_delays = 0;
    int code;
    Py_BEGIN_ALLOW_THREADS {
        std::lock_guard<std::mutex> guard(*self->lock);
        code = self->apm->echo_cancellation()->GetMetrics(&metrics);
        if (code == 0)
            code = self->apm->echo_cancellation()->GetDelayMetrics(&median, &deviation,
                                                                 &poor_delays);
    } Py_END_ALLOW_THREADS
    if (code != webrtc::AudioProcessing::kNoError) return apm_error("GetMetrics", code);
    return Py_BuildValue("{s:i,s:i,s:i,s:i,s:d}", "erl_db", metrics.echo_return_loss.instant,
                         "erle_db", metrics.echo_return_loss_enhancement.instant,
                         "delay_median_ms", median, "delay_std_ms", deviation,
                         "poor_delay_fraction", static_cast<double>(poor_delays));
}

PyMethodDef apm_methods[] = {
    {"process", reinterpret_cast<PyCFunction>(apm_process), METH_VARARGS,
     "process(capture, render, delay_ms): each 10 ms chunk of the microphone after the\n"
     "chunk of what the speaker played alongside it (mono, read only while echo is\n"
     "cancelled); returns the processed capture."},
    {"echo_metrics", reinterpret_cast<PyCFunction>(apm_echo_metrics), METH_NOARGS,
     "The canceller's own estimates: ERL, ERLE, delay median and spread."},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot apm_slots[] = {
    {Py_tp_doc, const_cast<char*>(
                    "One WebRTC audio processing module: a capture path and its echo reference.")},
    {Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)},
    {Py_tp_init, reinterpret_cast<void*>(apm_init)},
    {Py_tp_dealloc, reinterpret_cast<void*>(apm_dealloc)},
    {Py_tp_methods, apm_methods},
    {0, nullptr},
};

PyType_Spec apm_spec = {
    "vcalld.media.voice._webrtc_apm.AudioProcessing", sizeof(Apm), 0, Py_TPFLAGS_DEFAULT,
    apm_slots,
};

PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_webrtc_apm", "WebRTC audio processing (libwebrtc-audio-processing 0.3).",
    0, nullptr, nullptr, nullptr, nullptr, nullptr,
};

}  // namespace

PyMODINIT_FUNC PyInit__webrtc_apm() {
    PyObject* m = PyModule_Create(&module);
    if (m == nullptr) return nullptr;
    PyObject* type = PyType_FromSpec(&apm_spec);
    if (type == nullptr || PyModule_AddObject(m, "AudioProcessing", type) < 0) {
        Py_XDECREF(type);
        Py_DECREF(m);
        return nullptr;
    }
    return m;
}
